#![doc = include_str!("../README.md")]
//!
//! # Cargo features
//! - `cli` (default): the `remote-signer` command-line tool; it enables every backend. A library
//!   that wants a lean build uses `default-features = false` and names what it needs.
//! - `ssh-agent`: the ssh-agent server in [`ssh`] (the CLI's `agent` subcommand; `cli` enables it).
//! - `axum`: an axum extractor and cookie helpers for session tokens (`cookie::axum`).
//! - `azure`: Azure Key Vault and Managed HSM keys through the official SDK
//!   ([`backend::azure`]); Key Vault key URLs in [`KeyRef`].
//! - `pkcs11`: keys on PKCS#11 tokens and HSMs through the `cryptoki` crate
//!   ([`backend::pkcs11`]); `pkcs11:` URIs in [`KeyRef`]. It links no PKCS#11 library at build
//!   time: the module a URI names is loaded (`dlopen`) and initialised when the first key on it
//!   is opened, once per process. `cli` enables it.
//!
//! Snowflake key-pair JWTs ([`snowflake`]), surrogate keys ([`surrogate`]) and session tokens
//! ([`cookie`]) need no feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backend;
pub mod cookie;
mod error;
mod jws;
pub mod key;
pub mod keyref;
mod signer;
pub mod snowflake;
#[cfg(feature = "ssh-agent")]
pub mod ssh;
pub mod surrogate;

pub use error::{Error, ErrorKind, Result};
pub use key::{Algorithm, Jwk, KeyType, PublicKey, Signature};
pub use keyref::{KeyRef, OpenOptions};
pub use signer::{Counted, KeyId, RemoteSigner};
