//! `remote_signer._native`: the Rust half of the `remote_signer` Python package.
//!
//! Every class here wraps the crate's own type (one idea, one place): the Python package adds
//! only what Python needs on top (the `cryptography` key adapter, docstrings, stubs). Every call
//! that may wait on a key service releases the GIL while it waits.
#![forbid(unsafe_code)]

mod errors;
mod key;
mod runtime;
mod session;
mod snowflake;
mod time;

use pyo3::prelude::*;

/// The module `remote_signer._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<key::Key>()?;
    m.add_function(wrap_pyfunction!(key::open, m)?)?;
    m.add_class::<session::SessionSigner>()?;
    m.add_class::<session::SessionVerifier>()?;
    m.add_class::<snowflake::KeyPairAuth>()?;
    m.add_class::<snowflake::SqlApiTokens>()?;
    m.add_class::<snowflake::Token>()?;
    m.add_function(wrap_pyfunction!(snowflake::alter_user_statement, m)?)?;
    Ok(())
}
