//! Session tokens (cookies): the crate's `cookie::SessionSigner` and `SessionVerifier`, so a
//! Python service and a Rust service issue and accept each other's tokens.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use remote_signer::PublicKey;
use remote_signer::cookie;
use remote_signer::surrogate::TrustedKey;

use crate::errors::{invalid_input, to_py};
use crate::key::Key;
use crate::runtime::{Origin, enter, wait};
use crate::time;

/// Claims cross the boundary as JSON text, encoded and decoded by Python's `json` module.
fn to_json(claims: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let text: String = claims
        .py()
        .import("json")?
        .call_method1("dumps", (claims,))
        .map_err(|_| invalid_input("the claims cannot be encoded as JSON"))?
        .extract()?;
    serde_json::from_str(&text).map_err(|_| invalid_input("the claims cannot be encoded as JSON"))
}

fn from_json<'py>(
    py: Python<'py>,
    value: &serde_json::Map<String, serde_json::Value>,
) -> PyResult<Bound<'py, PyAny>> {
    let text =
        serde_json::to_string(value).map_err(|_| invalid_input("cannot encode the claims"))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// Issues session tokens for one purpose (a cookie's name or role), signed by a surrogate key
/// that `key` certifies once per hour (the default), or by `key` itself with `direct=True`.
#[pyclass(frozen, module = "remote_signer")]
pub struct SessionSigner {
    inner: cookie::SessionSigner,
    origin: Origin,
}

#[pymethods]
impl SessionSigner {
    #[new]
    #[pyo3(signature = (key, purpose, *, ttl = 3600, direct = false))]
    fn new(key: &Key, purpose: String, ttl: u64, direct: bool) -> PyResult<Self> {
        let managed = key.signer_here()?;
        let mode = if direct {
            cookie::SigningMode::Direct
        } else {
            cookie::SigningMode::Surrogate
        };
        let builder = cookie::SessionSigner::builder(managed, purpose)
            .mode(mode)
            .ttl(time::seconds(ttl));
        Ok(SessionSigner {
            inner: enter(|| builder.build())?,
            origin: Origin::here(),
        })
    }

    /// The purpose: every token's `aud`.
    #[getter]
    fn purpose(&self) -> &str {
        self.inner.purpose()
    }

    /// `True` when the managed key signs every token itself.
    #[getter]
    fn direct(&self) -> bool {
        self.inner.mode() == cookie::SigningMode::Direct
    }

    /// Signs `claims` (a dict without `iat`, `exp` or `aud`, which are added) for `ttl` seconds
    /// (default: the signer's). Returns the token. The GIL is released while the managed key
    /// certifies a surrogate or signs.
    #[pyo3(signature = (claims, *, ttl = None))]
    fn sign(
        &self,
        py: Python<'_>,
        claims: &Bound<'_, PyAny>,
        ttl: Option<u64>,
    ) -> PyResult<String> {
        let claims = to_json(claims)?;
        let ttl = ttl.map_or(self.inner.ttl(), time::seconds);
        let inner = &self.inner;
        wait(py, self.origin, async move {
            inner.sign_with_ttl(&claims, ttl).await
        })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// A trusted managed key: a `Key`, or a public key as PEM/DER/JWK/OpenSSH text or bytes.
fn trusted_key(item: &Bound<'_, PyAny>) -> PyResult<TrustedKey> {
    if let Ok(key) = item.cast::<Key>() {
        // Trust the key itself, not its id: a key file's id depends on how its path is spelled.
        return Ok(TrustedKey::new(key.get().signer().public_key().clone()));
    }
    let bytes = if item.is_instance_of::<PyString>() {
        item.extract::<String>()?.into_bytes()
    } else if let Ok(bytes) = item.cast::<PyBytes>() {
        bytes.as_bytes().to_vec()
    } else {
        return Err(invalid_input(
            "a trusted key must be a Key or a public key (PEM, DER, JWK or OpenSSH)",
        ));
    };
    Ok(TrustedKey::new(PublicKey::from_any(&bytes).map_err(to_py)?))
}

/// Verifies session tokens for one purpose with nothing but the trusted managed public key(s).
#[pyclass(frozen, module = "remote_signer")]
pub struct SessionVerifier {
    inner: cookie::SessionVerifier,
}

#[pymethods]
impl SessionVerifier {
    #[new]
    #[pyo3(signature = (trusted, purpose, *, leeway = 60, max_token_len = cookie::DEFAULT_MAX_TOKEN_LEN))]
    fn new(
        trusted: &Bound<'_, PyAny>,
        purpose: String,
        leeway: u64,
        max_token_len: usize,
    ) -> PyResult<Self> {
        let items: Vec<Bound<'_, PyAny>> = if trusted.cast::<Key>().is_ok()
            || trusted.is_instance_of::<PyString>()
            || trusted.is_instance_of::<PyBytes>()
        {
            vec![trusted.clone()]
        } else {
            trusted.try_iter()?.collect::<PyResult<_>>()?
        };
        if items.is_empty() {
            return Err(invalid_input("at least one trusted key is needed"));
        }
        let keys = items
            .iter()
            .map(trusted_key)
            .collect::<PyResult<Vec<_>>>()?;
        let inner = cookie::SessionVerifier::builder(keys, purpose)
            .leeway(time::seconds(leeway))
            .max_token_len(max_token_len)
            .build();
        Ok(SessionVerifier { inner })
    }

    /// The purpose a token must carry as `aud`.
    #[getter]
    fn purpose(&self) -> &str {
        self.inner.purpose()
    }

    /// Verifies `token` at `now` (Unix seconds, default the current time) and returns its claims
    /// as a dict; raises `VerificationError` (kind `invalid_token` or `expired`) otherwise.
    #[pyo3(signature = (token, *, now = None))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: String,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let session = self
            .inner
            .verify_at(time::at(now)?, &token)
            .map_err(to_py)?;
        from_json(py, session.claims())
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}
