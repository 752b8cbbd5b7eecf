//! Snowflake key-pair JWTs: the crate's `snowflake::KeyPairAuth`, `SqlApiTokens` and `Token`.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use remote_signer::snowflake::{self as sf, KeySlot};

use crate::errors::{invalid_input, to_py};
use crate::key::Key;
use crate::runtime::{Origin, wait};
use crate::time;

/// Key-pair JWTs for one Snowflake account and user, signed by an RSA key. The account and user
/// are normalised as the official connectors do; an account form that the connectors would cut
/// into something else (`org.account`) is refused with an error naming the right form.
#[pyclass(frozen, module = "remote_signer.snowflake")]
pub struct KeyPairAuth {
    inner: sf::KeyPairAuth,
    origin: Origin,
}

#[pymethods]
impl KeyPairAuth {
    #[new]
    fn new(key: &Key, account: String, user: String) -> PyResult<Self> {
        let inner = sf::KeyPairAuth::new(key.signer_here()?, &account, &user).map_err(to_py)?;
        Ok(KeyPairAuth {
            inner,
            origin: Origin::here(),
        })
    }

    /// The account as it appears in tokens (`MYORG-MYACCOUNT`).
    #[getter]
    fn account(&self) -> &str {
        self.inner.account()
    }

    /// The user as it appears in tokens (`JDOE`).
    #[getter]
    fn user(&self) -> &str {
        self.inner.user()
    }

    /// `SHA256:<base64>`, as `DESC USER` shows it in `RSA_PUBLIC_KEY_FP`.
    #[getter]
    fn fingerprint(&self) -> &str {
        self.inner.fingerprint()
    }

    /// The `iss` claim: `ACCOUNT.USER.SHA256:<fingerprint>`.
    #[getter]
    fn issuer(&self) -> String {
        self.inner.issuer()
    }

    /// The `sub` claim: `ACCOUNT.USER`.
    #[getter]
    fn subject(&self) -> String {
        self.inner.subject()
    }

    /// Signs a token issued at `issued_at` (Unix seconds, default now, truncated to whole
    /// seconds) and valid for `lifetime` seconds (at most 3600; the login flow accepts a token
    /// only within 60 s of its `iat`). Every call signs.
    #[pyo3(signature = (*, issued_at = None, lifetime = sf::LOGIN_LIFETIME.as_secs()))]
    fn token(&self, py: Python<'_>, issued_at: Option<f64>, lifetime: u64) -> PyResult<Token> {
        let issued_at = time::at(issued_at)?;
        let inner = &self.inner;
        let token = wait(py, self.origin, async move {
            inner.token_at(issued_at, time::seconds(lifetime)).await
        })?;
        Ok(Token { inner: token })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// A signed key-pair JWT. Its value is a bearer credential: `repr` shows only its times.
#[pyclass(frozen, module = "remote_signer.snowflake")]
pub struct Token {
    inner: sf::Token,
}

#[pymethods]
impl Token {
    /// The JWT itself.
    #[getter]
    fn value(&self) -> &str {
        self.inner.as_str()
    }

    /// `iat`, Unix seconds.
    #[getter]
    fn issued_at(&self) -> u64 {
        time::unix(self.inner.issued_at())
    }

    /// `exp`, Unix seconds.
    #[getter]
    fn expires_at(&self) -> u64 {
        time::unix(self.inner.expires_at())
    }

    /// The SQL API headers: `Authorization: Bearer <token>` and
    /// `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`.
    fn sql_api_headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let headers = PyDict::new(py);
        for (name, value) in self.inner.sql_api_headers() {
            headers.set_item(name, value)?;
        }
        Ok(headers)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// SQL API bearer tokens, cached and renewed `renew_before` seconds ahead of expiry: one
/// signature per `lifetime` however many requests and threads ask.
#[pyclass(frozen, module = "remote_signer.snowflake")]
pub struct SqlApiTokens {
    inner: sf::SqlApiTokens,
    origin: Origin,
}

#[pymethods]
impl SqlApiTokens {
    #[new]
    #[pyo3(signature = (
        auth,
        *,
        lifetime = sf::DEFAULT_SQL_API_LIFETIME.as_secs(),
        renew_before = sf::DEFAULT_RENEW_BEFORE.as_secs(),
    ))]
    fn new(auth: &KeyPairAuth, lifetime: u64, renew_before: u64) -> PyResult<Self> {
        auth.origin.check()?;
        let inner = sf::SqlApiTokens::with_lifetime(
            auth.inner.clone(),
            time::seconds(lifetime),
            time::seconds(renew_before),
        )
        .map_err(to_py)?;
        Ok(SqlApiTokens {
            inner,
            origin: Origin::here(),
        })
    }

    /// The token lifetime in seconds.
    #[getter]
    fn lifetime(&self) -> u64 {
        self.inner.lifetime().as_secs()
    }

    /// A token valid at `now` (Unix seconds, default the current time) and for at least the
    /// renewal margin after it; signs a new one only when the cached one is due.
    #[pyo3(signature = (*, now = None))]
    fn bearer_token(&self, py: Python<'_>, now: Option<f64>) -> PyResult<Token> {
        let now = time::at(now)?;
        let inner = &self.inner;
        let token = wait(
            py,
            self.origin,
            async move { inner.bearer_token_at(now).await },
        )?;
        Ok(Token { inner: token })
    }

    /// The SQL API headers with a valid token (see `bearer_token`).
    #[pyo3(signature = (*, now = None))]
    fn headers<'py>(&self, py: Python<'py>, now: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        self.bearer_token(py, now)?.sql_api_headers(py)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// `ALTER USER <user> SET RSA_PUBLIC_KEY='<base64 DER>';` (`RSA_PUBLIC_KEY_2` for slot 2): what a
/// Snowflake administrator runs once to register the key.
#[pyfunction]
#[pyo3(signature = (key, user, slot = 1))]
pub fn alter_user_statement(key: &Key, user: String, slot: u8) -> PyResult<String> {
    let slot = match slot {
        1 => KeySlot::First,
        2 => KeySlot::Second,
        _ => return Err(invalid_input("the key slot is 1 or 2")),
    };
    sf::alter_user_statement(&user, key.signer().public_key(), slot).map_err(to_py)
}
