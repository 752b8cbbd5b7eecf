//! The integration tests, one binary: each area is a module named after its file
//! (`tests/faults.rs` is `faults::`), so `cargo test --test integration faults::` runs one area.
//!
//! One binary lets the areas run side by side. Most tests wait (on sshd, openssl, ssh-keygen,
//! the emulators, real network timeouts), so a test that waits out a timeout leaves the cores
//! to the others, where separate binaries would run one after another. It also links the crate
//! once instead of once per area.
//!
//! Nothing here may change the process for the other tests: no environment variables set, no
//! global allocator, no global log subscriber (the ssh helpers' `log` capture only collects).
//! Tests that need such things are binaries of their own (see Cargo.toml): `aws`, `secrets`,
//! `zeroize` and `zeroize_alloc`.

mod support;

#[cfg(feature = "azure")]
mod azure;
mod cookie;
#[cfg(all(feature = "azure", feature = "ssh-agent"))]
mod faults;
#[cfg(feature = "cli")]
mod file_inputs;
mod jwt;
mod local_keys;
#[cfg(all(feature = "pkcs11", feature = "cli", feature = "ssh-agent"))]
mod pkcs11;
mod snowflake;
#[cfg(feature = "ssh-agent")]
mod ssh_agent;
mod surrogate;
#[cfg(feature = "x509")]
mod x509;
