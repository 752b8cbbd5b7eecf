//! Surrogate keys: one managed-key signature per period, not per message.
//!
//! A [`SurrogateSigner`] wraps any [`RemoteSigner`](crate::RemoteSigner) (the *managed* key)
//! for one or more purposes. It generates a fresh Ed25519 key in memory (the *surrogate*),
//! has the managed key sign a *certificate* for it, and signs messages with the surrogate until
//! shortly before the certificate expires, when the next surrogate is certified in the
//! background. The managed key signs once per period per process, however many messages are
//! signed and however many tasks sign at the moment of rotation.
//!
//! A [`SurrogateVerifier`] needs nothing but the managed public key (or several
//! [`TrustedKey`]s, while the managed key itself is being rotated): it checks the certificate,
//! then the message signature with the certified key, and caches verified certificates.
//!
//! # The certificate
//! A compact JWS (RFC 7515) that any JOSE library verifies with the managed public key. It
//! names the managed key by a value that says nothing about where the key is kept, and sends
//! nothing the verifier can compute.
//!
//! Protected header, in this order:
//!
//! | member | value |
//! |---|---|
//! | `alg` | the managed key's algorithm: `RS256`, `ES256`, ... (its default unless configured) |
//! | `kid` | the managed key's RFC 7638 JWK thumbprint (SHA-256, base64url), or the name set with [`SurrogateSignerBuilder::managed_kid`]; never its location |
//! | `typ` | `surrogate+jwt` ([`CERTIFICATE_TYP`], RFC 8725 explicit typing) |
//!
//! Claims (a JWT claims set), in this order:
//!
//! | claim | value |
//! |---|---|
//! | `iat` | issue time, integer seconds since the Unix epoch |
//! | `nbf` | start of the signing window, only when it differs from `iat` (this crate never sends it) |
//! | `exp` | end of the signing window: `iat` + period |
//! | `pur` | array of the purposes the surrogate may sign for (non-empty strings) |
//! | `max_exp` | the latest `exp` a token signed by the surrogate may carry: `exp` + token-lifetime bound |
//! | `cnf` | `{"jwk": {"kty":"OKP","crv":"Ed25519","x":...}}`: the surrogate's public key (RFC 7800) |
//!
//! No `iss` (the header's `kid` names the managed key once) and no `sub` (the surrogate's
//! thumbprint is computed from `cnf.jwk`). For example (line breaks added):
//!
//! ```text
//! {"alg":"ES256","kid":"9YoMViIRS4PpsihMb88okVVH1b6EyWzJyY1ffIrJrSQ","typ":"surrogate+jwt"}
//! {"iat":1767225600,"exp":1767229200,"pur":["session"],"max_exp":1767315600,
//!  "cnf":{"jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}}
//! ```
//!
//! The signature is the managed key's over `base64url(header) "." base64url(claims)`, in the
//! JOSE form. The signer checks it with the managed public key before using the surrogate, so a
//! failed or garbled managed signature never puts a half-made key in use.
//!
//! # Verification
//! A certificate is accepted when: its `typ` is `surrogate+jwt` and it has no `crit` (not even
//! `null`); a trusted key named by `kid` ([`TrustedKey`]: its thumbprint unless configured)
//! verifies the signature with an algorithm from *that key's* allow-list (the header's `alg`
//! only picks among them, RFC 8725); `cnf.jwk` is an Ed25519 key; `iat <= nbf <= exp <=
//! max_exp`; the verifier's policy holds, whatever the signature says: the signing window
//! `exp - nbf` is at most 7 days ([`DEFAULT_MAX_CERTIFICATE_WINDOW`], the RFC 9345 limit), the
//! token bound `max_exp - exp` at most 24 hours ([`DEFAULT_MAX_TOKEN_BOUND`]), and `iat` is not
//! in the future beyond the leeway (all set on [`SurrogateVerifier::builder`]); and `pur`
//! contains the purpose asked for. Then, per use:
//! - a plain message ([`SurrogateVerifier::verify_at`]) must be verified inside the signing
//!   window `[nbf, exp]`;
//! - a token with its own `iat`/`exp` ([`SurrogateVerifier::check_token_times`]) must have been
//!   issued inside the signing window and expire no later than `max_exp`, and be valid now, so
//!   long sessions outlive the surrogate that signed them while a stolen surrogate can forge
//!   nothing that lives past `max_exp`.
//!
//! Every time comparison allows a configurable leeway (default 60 s). Refusals carry a coarse
//! reason (which check failed), never the certificate.
//!
//! # Rotation
//! The certificate's lifetime is the *period* (default one hour). Rotation is due the *refresh
//! margin* (default 10 minutes) plus a random *jitter* (up to 5 minutes by default) before
//! expiry; the first signer to notice starts it in the background (single flight) and signing
//! continues with the current surrogate. When the managed key fails, signing continues with the
//! current surrogate until its certificate expires while rotation is retried with exponential
//! backoff (1 s doubling to 60 s by default); after expiry signing fails with an error naming the
//! last failure, and recovers by itself at the first successful retry. A signer holds the current
//! surrogate only; the next one replaces it once complete.
//!
//! The rotation machinery, [`Rotation`], is generic over what it issues ([`Issuer`]), and time
//! and randomness are parameters ([`Clock`], [`SurrogateSignerBuilder::rng`]).

mod certificate;
mod signer;
mod verifier;

pub use certificate::{CERTIFICATE_TYP, CertificateInfo};
// The clock and the renewal engine are crate-level; re-exported here where they began.
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::renewal::{Credential, Issuer, Rotation, RotationOptions, RotationStatus};
use crate::{clock, renewal as rotation};
pub use signer::{
    CertifiedKey, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_PERIOD, SurrogateIssuer, SurrogateSignature,
    SurrogateSigner, SurrogateSignerBuilder,
};
pub use verifier::{
    DEFAULT_LEEWAY, DEFAULT_MAX_CERTIFICATE_WINDOW, DEFAULT_MAX_TOKEN_BOUND, SurrogateVerifier,
    SurrogateVerifierBuilder, TrustedKey,
};

pub(crate) use verifier::make_room;
