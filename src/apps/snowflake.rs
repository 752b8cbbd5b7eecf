//! Snowflake key-pair JWTs signed by a managed RSA, EC P-256 or EC P-384 key.
//!
//! Snowflake authenticates a user by a JWT signed with the private half of a key whose
//! public half is registered on the user (`ALTER USER ... SET RSA_PUBLIC_KEY='...'`, see
//! [`alter_user_statement`]). Snowflake checks the token against that registered key itself, so
//! the key must sign every token (no surrogate keys here); the saving is the token cache.
//!
//! - [`KeyPairAuth`] normalises the account and user as the official connectors do and signs
//!   tokens byte-identical to the Python connector's for the same key, account, user and `iat`
//!   (RS256 for RSA keys; ES256 for P-256 and ES384 for P-384 keys, as the connector signs since
//!   4.5.0, where ECDSA's randomized signature leaves the signing input identical).
//!   Where the connectors cut an account name into something the user cannot have meant (the
//!   dotted `org.account` form, a `.global` name without a connection group), it refuses with
//!   an error that names the right form; [`normalize_account`] documents each case.
//!   [`KeyPairAuth::login_token`] signs a fresh 60-second token on every call, for the login flow
//!   (which refuses tokens older than 60 s).
//! - [`SqlApiTokens`] caches the SQL API bearer token and renews it ahead of expiry, one
//!   signature per lifetime however many requests and tasks use it.
//! - [`Token::sql_api_headers`] gives `Authorization: Bearer <token>` and
//!   `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`.
//!
//! Time is a parameter underneath (`*_at(now)`), with `SystemTime::now()` conveniences on top.
//!
//! ```no_run
//! # async fn demo() -> remote_signer::Result<()> {
//! use remote_signer::snowflake::{KeyPairAuth, SqlApiTokens};
//! use remote_signer::{KeyRef, OpenOptions};
//!
//! let signer = "rsa_key.p8".parse::<KeyRef>()?.open(&OpenOptions::new()).await?;
//! let auth = KeyPairAuth::new(signer, "myorg-myaccount", "jdoe")?;
//! println!("register with: {}", auth.fingerprint());
//! let tokens = SqlApiTokens::new(auth);
//! let headers = tokens.bearer_token().await?.sql_api_headers();
//! # let _ = headers; Ok(()) }
//! ```

mod names;
mod sql_api;
mod token;

pub use names::{normalize_account, normalize_user};
pub use sql_api::{DEFAULT_RENEW_BEFORE, DEFAULT_SQL_API_LIFETIME, SqlApiTokens};
pub use token::{KeyPairAuth, KeySlot, LOGIN_LIFETIME, MAX_LIFETIME, Token, alter_user_statement};

/// The `Authorization` header name.
pub const AUTHORIZATION: &str = "Authorization";

/// The header that tells the SQL API which kind of bearer token it gets.
pub const TOKEN_TYPE_HEADER: &str = "X-Snowflake-Authorization-Token-Type";

/// The value of [`TOKEN_TYPE_HEADER`] for key-pair JWTs.
pub const KEYPAIR_JWT: &str = "KEYPAIR_JWT";
