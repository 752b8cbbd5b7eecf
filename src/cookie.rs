//! Session cookies signed by a managed key, directly or through certified surrogates.
//!
//! A [`SessionSigner`] issues tokens for one *purpose* (the cookie's name or role); a
//! [`SessionVerifier`] checks them with nothing but the trusted managed public key(s), so every
//! instance of a fleet verifies every other instance's cookies with no shared key ring and no
//! call to the vault.
//!
//! # The token
//! A compact JWS (RFC 7515) whose claims are the application's own JSON object plus:
//!
//! | claim | value |
//! |---|---|
//! | `iat` | issue time, integer seconds since the Unix epoch |
//! | `exp` | expiry, `iat` + lifetime |
//! | `aud` | the purpose, so a token minted for one cookie is refused for another |
//!
//! The protected header depends on the mode ([`SigningMode`]):
//!
//! | mode | header |
//! |---|---|
//! | surrogate (default) | `{"alg":"EdDSA","kid":<surrogate thumbprint>,"typ":"JWT","cert":<surrogate certificate>}` |
//! | direct | `{"alg":<managed alg>,"kid":<managed key id>,"typ":"JWT"}` |
//!
//! The certificate is the compact JWS described in [`crate::surrogate`]; any JOSE library
//! verifies it with the managed public key, then the token with the certificate's `cnf.jwk`.
//!
//! # Verification (RFC 8725)
//! In order: the length cap (default 8 KiB) before any decoding; three base64url parts;
//! header `typ` is `JWT` and there is no `crit`; in surrogate mode the certificate verifies
//! (trusted managed key, this purpose), `alg` is `EdDSA`, `kid` is the certified thumbprint,
//! and the signature verifies with the certified key; in direct mode a trusted key (matching
//! `kid` if it has a key id) allows the header's `alg` and verifies the signature; `aud` is the
//! purpose; `iat` and `exp` are integers and the token is valid now, and in surrogate mode was
//! issued inside the certificate's window and expires no later than its `max_exp`. Time checks
//! allow a leeway (default 60 s).
//!
//! # Web frameworks
//! With the `axum` feature, the module `cookie::axum` has an extractor for the verified session and
//! helpers that set and clear the cookie with safe defaults.

#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod token;

pub use token::{
    Session, SessionSigner, SessionVerifier, SessionVerifierBuilder, SigningMode,
    DEFAULT_MAX_SESSION_LIFETIME, DEFAULT_MAX_TOKEN_LEN, DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TTL,
    DIRECT_RESERVED_CLAIMS, SESSION_TYP, SURROGATE_RESERVED_CLAIMS,
};
