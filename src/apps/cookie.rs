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
//! The application may not set the reserved claims: in direct mode every registered JWT claim
//! ([`DIRECT_RESERVED_CLAIMS`]: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`), so a claim
//! value an attacker controls cannot shape a token the managed key signs into another
//! service's token; in surrogate mode `aud`, `exp`, `nbf` and `iat`
//! ([`SURROGATE_RESERVED_CLAIMS`]). Signing refuses them.
//!
//! The protected header depends on the mode ([`SigningMode`]); `typ` is `session+jwt`
//! ([`SESSION_TYP`]) in both, so no other JWT signed by the same key passes for a session:
//!
//! | mode | header |
//! |---|---|
//! | surrogate (default) | `{"alg":"EdDSA","typ":"session+jwt","cert":<surrogate certificate>}` |
//! | direct | `{"alg":<managed alg>,"kid":<managed key's RFC 7638 thumbprint>,"typ":"session+jwt"}` |
//!
//! The certificate is the compact JWS described in [`crate::surrogate`]; any JOSE library
//! verifies it with the managed public key, then the token with the certificate's `cnf.jwk`.
//! The surrogate-mode header has no `kid` (it would repeat the thumbprint of `cnf.jwk`); a
//! `kid` there, if present, must be that thumbprint. Nothing in a token tells where the
//! managed key is kept: it is named by its thumbprint (or an explicit name,
//! [`SessionSignerBuilder::kid`], [`SurrogateSignerBuilder::managed_kid`](crate::surrogate::SurrogateSignerBuilder::managed_kid)).
//! For a 64-byte claim set a surrogate-mode token is about 1,220 bytes with an RSA-2048
//! managed key and 880 with P-256 (`cargo bench --bench cookie --features axum` prints them).
//!
//! # Verification (RFC 8725)
//! In order: the length cap (default 8 KiB) before any decoding; a token verified before and
//! not yet at its `exp` is answered from the cache of verified tokens ([`SessionVerifier`]);
//! three base64url parts; header `typ` is `session+jwt` and there is no `crit` (not even
//! `null`); in surrogate mode the certificate verifies (trusted managed key named by its
//! `kid`, the policy bounds, this purpose), `alg` is `EdDSA`, and the signature verifies with
//! the certified key; in direct mode `kid` names a trusted key, which allows the header's
//! `alg` and verifies the signature; `aud` is the purpose; `iat` and `exp` are integers,
//! `exp - iat` is at most 24 hours ([`DEFAULT_MAX_SESSION_LIFETIME`]), the token is valid now
//! and past its `nbf` if it has one (RFC 7519 4.1.5), and in surrogate mode was issued inside
//! the certificate's window and expires no later than its `max_exp`. Time checks allow a
//! leeway (default 60 s). Every bound is set on [`SessionVerifier::builder`].
//!
//! # Web frameworks
//! With the `axum` feature, the module `cookie::axum` has an extractor for the verified session and
//! helpers that set and clear the cookie with safe defaults (`Secure`, `HttpOnly`,
//! `SameSite=Lax`), building `Set-Cookie` and reading `Cookie` with the `cookie` crate.

#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod token;

pub use token::{
    DEFAULT_MAX_SESSION_LIFETIME, DEFAULT_MAX_TOKEN_LEN, DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TTL,
    DIRECT_RESERVED_CLAIMS, SESSION_TYP, SURROGATE_RESERVED_CLAIMS, Session, SessionSigner,
    SessionSignerBuilder, SessionVerifier, SessionVerifierBuilder, SignedBy, SigningMode,
};
