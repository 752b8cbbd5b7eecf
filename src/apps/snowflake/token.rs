//! Building and signing one key-pair JWT.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;

use super::names::{normalize_account, normalize_user};
use crate::clock::{from_unix_seconds, unix_seconds_strict};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{Algorithm, KeyType, PublicKey};
use crate::signer::RemoteSigner;

/// The longest token lifetime Snowflake accepts.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// The lifetime of a login token, as the official connectors use it. The login flow refuses a
/// token received more than 60 s after its `iat` anyway (error 394302).
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(60);

/// The algorithm Snowflake tokens use for a key type, as the Python connector picks it (4.5.0
/// and later): RS256 for RSA, ES256 for P-256, ES384 for P-384.
fn snowflake_algorithm(key_type: KeyType) -> Option<Algorithm> {
    match key_type {
        KeyType::Rsa => Some(Algorithm::RS256),
        KeyType::P256 => Some(Algorithm::ES256),
        KeyType::P384 => Some(Algorithm::ES384),
        _ => None,
    }
}

/// `b64url({"alg":"<alg>","typ":"JWT"})`: the connectors' header, keys sorted as PyJWT sorts them.
fn header_b64(algorithm: Algorithm) -> String {
    URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{algorithm}","typ":"JWT"}}"#))
}

/// Key-pair authentication for one Snowflake account and user with one RSA, P-256 or P-384 key.
///
/// Holds the normalised names (see [`normalize_account`] and [`normalize_user`]) and the key's
/// fingerprint, and signs tokens whose header, claims, claim order and JSON text are those of the
/// official Python connector: for the same key, account, user and `iat`, the token is the same
/// byte for byte.
///
/// ```text
/// header  {"alg":"RS256","typ":"JWT"}     (ES256 for a P-256 key, ES384 for a P-384 key)
/// claims  {"iss":"ACCOUNT.USER.SHA256:<fingerprint>","sub":"ACCOUNT.USER","iat":<secs>,"exp":<secs>}
/// signed  with the key over b64url(header) "." b64url(claims)
/// ```
///
/// ECDSA signatures are randomized, so with an EC key only the signing input is the same as the
/// connector's, byte for byte; the signature verifies all the same.
///
/// Cheap to clone; the signer is shared.
#[derive(Clone)]
pub struct KeyPairAuth {
    signer: Arc<dyn RemoteSigner>,
    algorithm: Algorithm,
    account: String,
    user: String,
    fingerprint: String,
}

/// A signed key-pair JWT.
///
/// Its text is a bearer credential: `Debug` shows only the times, never the token.
#[derive(Clone)]
pub struct Token {
    text: Arc<str>,
    issued_at: u64,
    expires_at: u64,
}

/// The claims, in the connectors' order.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
}

impl KeyPairAuth {
    /// Prepares tokens for `account` and `user`, signed by `signer`.
    ///
    /// # Errors
    /// [`ErrorKind::UnsupportedKey`] unless the key is RSA, EC P-256 or EC P-384 (what Snowflake
    /// and the connectors take); [`ErrorKind::InvalidInput`] from [`normalize_account`] and
    /// [`normalize_user`].
    pub fn new(signer: Arc<dyn RemoteSigner>, account: &str, user: &str) -> Result<Self> {
        let key_type = signer.key_type();
        let algorithm = snowflake_algorithm(key_type).ok_or_else(|| {
            Error::with_context(
                ErrorKind::UnsupportedKey,
                format!(
                    "Snowflake key-pair authentication needs an RSA, EC P-256 or EC P-384 key; {} is {key_type}",
                    signer.key_id()
                ),
            )
        })?;
        let fingerprint = signer.public_key().snowflake_fingerprint();
        Ok(KeyPairAuth {
            algorithm,
            account: normalize_account(account)?,
            user: normalize_user(user)?,
            fingerprint,
            signer,
        })
    }

    /// The account as it appears in the token (`MYORG-MYACCOUNT`).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The user as it appears in the token (`JDOE`).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The key's fingerprint as `DESC USER` shows it in `RSA_PUBLIC_KEY_FP`
    /// (`SHA256:` and padded standard base64 of SHA-256 over the DER SubjectPublicKeyInfo).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The `sub` claim: `ACCOUNT.USER`.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.account, self.user)
    }

    /// The `iss` claim: `ACCOUNT.USER.SHA256:<fingerprint>`.
    pub fn issuer(&self) -> String {
        format!("{}.{}.{}", self.account, self.user, self.fingerprint)
    }

    /// The token algorithm: RS256, ES256 or ES384, fixed by the key.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signer.
    pub fn signer(&self) -> &Arc<dyn RemoteSigner> {
        &self.signer
    }

    /// Signs a fresh login token valid for [`LOGIN_LIFETIME`] from now. Every call signs: the
    /// login flow refuses tokens older than 60 s, so login tokens are never cached.
    ///
    /// # Errors
    /// As [`KeyPairAuth::token_at`].
    pub async fn login_token(&self) -> Result<Token> {
        self.login_token_at(SystemTime::now()).await
    }

    /// [`KeyPairAuth::login_token`] at a given time.
    ///
    /// # Errors
    /// As [`KeyPairAuth::token_at`].
    pub async fn login_token_at(&self, now: SystemTime) -> Result<Token> {
        self.token_at(now, LOGIN_LIFETIME).await
    }

    /// Signs a token issued at `issued_at` (truncated to whole seconds) and valid for `lifetime`.
    /// The signature is checked with the public key before the token is returned.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a zero, fractional or over-one-hour lifetime, or a time
    /// before 1970; the signer's errors; [`ErrorKind::Signing`] if the signer returns a signature
    /// that does not verify.
    pub async fn token_at(&self, issued_at: SystemTime, lifetime: Duration) -> Result<Token> {
        let lifetime = check_lifetime(lifetime)?;
        let iat = unix_seconds_strict(issued_at)?;
        let exp = iat
            .checked_add(lifetime)
            .ok_or_else(|| Error::invalid_input("token expiry overflows"))?;
        let iss = self.issuer();
        let sub = self.subject();
        let claims = python_json(&Claims {
            iss: &iss,
            sub: &sub,
            iat,
            exp,
        })?;
        let input = format!(
            "{}.{}",
            header_b64(self.algorithm),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let text = crate::jws::sign(&*self.signer, self.algorithm, input).await?;
        Ok(Token {
            text: text.into(),
            issued_at: iat,
            expires_at: exp,
        })
    }
}

impl fmt::Debug for KeyPairAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPairAuth")
            .field("account", &self.account)
            .field("user", &self.user)
            .field("fingerprint", &self.fingerprint)
            .field("algorithm", &self.algorithm)
            .field("key_id", self.signer.key_id())
            .finish()
    }
}

impl Token {
    /// The compact JWT.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `iat` claim.
    pub fn issued_at(&self) -> SystemTime {
        from_unix_seconds(self.issued_at)
    }

    /// The `exp` claim.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_seconds(self.expires_at)
    }

    /// The `Authorization` header value: `Bearer <token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.text)
    }

    /// The two headers a Snowflake SQL API request carries:
    /// `Authorization: Bearer <token>` and `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`.
    pub fn sql_api_headers(&self) -> [(&'static str, String); 2] {
        [
            (super::AUTHORIZATION, self.bearer()),
            (super::TOKEN_TYPE_HEADER, super::KEYPAIR_JWT.to_string()),
        ]
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("iat", &self.issued_at)
            .field("exp", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Which of a user's two key slots a public key goes into (two slots allow rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeySlot {
    /// `RSA_PUBLIC_KEY`.
    #[default]
    First,
    /// `RSA_PUBLIC_KEY_2`.
    Second,
}

impl KeySlot {
    /// The user property: `RSA_PUBLIC_KEY` or `RSA_PUBLIC_KEY_2`.
    pub fn property(self) -> &'static str {
        match self {
            KeySlot::First => "RSA_PUBLIC_KEY",
            KeySlot::Second => "RSA_PUBLIC_KEY_2",
        }
    }
}

/// The statement that registers `public_key` for `user`:
/// `ALTER USER <user> SET RSA_PUBLIC_KEY='<base64 DER SubjectPublicKeyInfo>';`
/// (`RSA_PUBLIC_KEY_2` for [`KeySlot::Second`]). The properties keep their RSA names for EC
/// P-256 and P-384 keys too; the SubjectPublicKeyInfo says which kind of key it is.
///
/// The user is written as given when it is a plain identifier (letters, digits, `_`, `$`, not
/// starting with a digit or `$`), and double-quoted otherwise (`"first.last@example.com"`); a
/// quoted identifier is case-sensitive in Snowflake, so give such names exactly as they were
/// created.
///
/// # Errors
/// [`ErrorKind::UnsupportedKey`] unless the key is RSA, EC P-256 or EC P-384;
/// [`ErrorKind::InvalidInput`] for an empty user name or one with control characters.
pub fn alter_user_statement(user: &str, public_key: &PublicKey, slot: KeySlot) -> Result<String> {
    if snowflake_algorithm(public_key.key_type()).is_none() {
        return Err(Error::with_context(
            ErrorKind::UnsupportedKey,
            format!(
                "Snowflake registers RSA, EC P-256 and EC P-384 public keys; this key is {}",
                public_key.key_type()
            ),
        ));
    }
    normalize_user(user)?;
    let plain = user
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    let name = if plain {
        user.to_string()
    } else {
        format!("\"{}\"", user.replace('"', "\"\""))
    };
    Ok(format!(
        "ALTER USER {name} SET {}='{}';",
        slot.property(),
        STANDARD.encode(public_key.to_spki_der())
    ))
}

fn check_lifetime(lifetime: Duration) -> Result<u64> {
    if lifetime.is_zero() || lifetime.subsec_nanos() != 0 {
        return Err(Error::invalid_input(
            "Snowflake token lifetime must be a whole number of seconds, at least 1",
        ));
    }
    if lifetime > MAX_LIFETIME {
        return Err(Error::invalid_input(format!(
            "Snowflake token lifetime of {} s is over the one hour ({} s) Snowflake accepts",
            lifetime.as_secs(),
            MAX_LIFETIME.as_secs()
        )));
    }
    Ok(lifetime.as_secs())
}

/// JSON as Python's `json.dumps(..., separators=(",", ":"))` writes it, which PyJWT uses: compact,
/// and every character outside printable ASCII escaped as `\uXXXX` (`ensure_ascii`), so a
/// non-ASCII user name gives the same bytes as the connector.
fn python_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, EnsureAscii);
    value
        .serialize(&mut serializer)
        .map_err(|_| Error::invalid_input("cannot encode token claims"))?;
    Ok(out)
}

/// serde_json's compact form plus Python's `ensure_ascii`. serde_json already escapes `"`, `\`
/// and C0 controls exactly as Python does (short forms for `\b \f \n \r \t`, else lowercase
/// `\u00xx`); this adds DEL and everything beyond ASCII, as UTF-16 units.
struct EnsureAscii;

impl serde_json::ser::Formatter for EnsureAscii {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() && !c.is_ascii_control() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_python_ensure_ascii() {
        #[derive(Serialize)]
        struct S<'a> {
            a: &'a str,
            n: u64,
        }
        let json = python_json(&S {
            a: "é\"\\\n\u{7f}\u{1f600}/",
            n: 7,
        })
        .unwrap();
        // json.dumps({"a": "é\"\\\n\x7f\U0001F600/", "n": 7}, separators=(",", ":"))
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"a":"\u00e9\"\\\n\u007f\ud83d\ude00/","n":7}"#
        );
    }

    #[test]
    fn lifetimes_are_checked() {
        assert_eq!(check_lifetime(Duration::from_secs(3600)).unwrap(), 3600);
        assert!(check_lifetime(Duration::from_secs(3601)).is_err());
        assert!(check_lifetime(Duration::ZERO).is_err());
        assert!(check_lifetime(Duration::from_millis(1500)).is_err());
    }
}
