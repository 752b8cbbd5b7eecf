//! Machinery the applications share, each idea once: time ([`clock`]), renewal of short-lived
//! credentials ([`renewal`]), certified surrogate keys ([`surrogate`]), bounded reading of
//! file inputs ([`file`]) and compact JWS encoding (`jws`).

pub mod clock;
pub mod file;
pub(crate) mod jws;
pub mod renewal;
pub mod surrogate;
