#![doc = include_str!("../README.md")]
//!
//! # Cargo features
//! - `cli` (default): the `remote-signer` command-line tool.
//!
//! - `axum`: an axum extractor and cookie helpers for session tokens (`cookie::axum`).
//!
//! Surrogate keys ([`surrogate`]) and session tokens ([`cookie`]) need no feature.
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
pub mod surrogate;

pub use error::{Error, ErrorKind, Result};
pub use key::{Algorithm, Jwk, KeyType, PublicKey, Signature};
pub use keyref::{KeyRef, OpenOptions};
pub use signer::{KeyId, RemoteSigner};
