#![doc = include_str!("../README.md")]
//!
//! # Cargo features
//! - `cli` (default): the `remote-signer` command-line tool; it enables every backend. A library
//!   that wants a lean build uses `default-features = false` and names what it needs.
//! - `ssh-agent`: the ssh-agent server in [`ssh`] (the CLI's `agent` subcommand; `cli` enables it).
//! - `axum`: an axum extractor and cookie helpers for session tokens (`cookie::axum`).
//! - `azure`: Azure Key Vault and Managed HSM keys through the official SDK
//!   ([`backend::azure`]); Key Vault key URLs in [`KeyRef`].
//! - `aws`: AWS KMS keys through the official SDK ([`backend::aws`]); KMS key and alias ARNs in
//!   [`KeyRef`]. It pulls in `aws-config` (with its SSO and `credential_process` providers) and
//!   `aws-sdk-kms` over `aws-smithy-http-client`'s hyper client on rustls with ring (no aws-lc,
//!   no second TLS stack).
//! - `x509`: X.509 certificates and CSRs signed by a managed key (`x509`), and the Entra ID
//!   client assertion (`jwt::EntraAssertion`), which names a certificate; `cli` enables it.
//! - `pkcs11`: keys on PKCS#11 tokens and HSMs through the `cryptoki` crate
//!   ([`backend::pkcs11`]); `pkcs11:` URIs in [`KeyRef`]. It links no PKCS#11 library at build
//!   time: the module a URI names is loaded (`dlopen`) and initialised when the first key on it
//!   is opened, once per process. `cli` enables it.
//!
//! Snowflake key-pair JWTs ([`snowflake`]), the other services' key-pair JWTs ([`jwt`]), JWKS
//! ([`key::Jwks`]), surrogate keys ([`surrogate`]) and session tokens ([`cookie`]) need no
//! feature.
//!
//! # Logging
//! The crate installs no logger; it emits through two facades, as its parts' ecosystems do:
//! - the ssh-agent ([`ssh`]) logs through [`log`](https://docs.rs/log) under targets
//!   `remote_signer::ssh::*`: refused connections and requests (`info`/`warn`), and why a
//!   malformed or unknown message was refused (`debug`); never the data;
//! - the Azure backend's SDK (`azure_core`, `azure_identity`) logs requests, retries and
//!   credential attempts through [`tracing`](https://docs.rs/tracing).
//!
//! One subscriber shows both: `tracing-subscriber` with its `tracing-log` feature (on by
//! default) forwards `log` records to `tracing`:
//!
//! ```
//! // Cargo.toml: tracing-subscriber = "0.3"
//! tracing_subscriber::fmt()
//!     .with_writer(std::io::stderr)
//!     .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
//!     .init();
//! ```
//!
//! The `remote-signer` tool does this itself: `-v`, `-vv`, `-vvv` or `RUST_LOG`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod apps;
pub mod backend;
mod foundation;
mod shared;

#[cfg(feature = "ssh-agent")]
pub use apps::ssh;
#[cfg(feature = "x509")]
pub use apps::x509;
pub use apps::{cookie, jwt, snowflake};
pub use foundation::{key, keyref};
pub use shared::{clock, file, renewal, surrogate};

use foundation::{error, signer};
use shared::jws;

pub use error::{Error, ErrorKind, Result};
pub use key::{Algorithm, Jwk, KeyType, PublicKey, Signature};
pub use keyref::{KeyRef, OpenOptions};
pub use signer::{Counted, KeyId, RemoteSigner};
