//! One tokio runtime for the process, shared by every key: backends and surrogate rotation spawn
//! background tasks on it, so it outlives any single call.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors::to_py;

static RUNTIME: OnceLock<std::io::Result<Runtime>> = OnceLock::new();

/// The runtime, started on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    let started = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("remote-signer")
            .enable_all()
            .build()
    });
    started.as_ref().map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}"))
    })
}

/// Runs `future` to completion on the runtime with the GIL released, so other Python threads
/// run while a key service answers.
pub fn wait<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = remote_signer::Result<T>> + Send,
    T: Send,
{
    let runtime = runtime()?;
    py.detach(|| runtime.block_on(future)).map_err(to_py)
}

/// Runs `make` inside the runtime's context (for constructors that spawn background tasks).
pub fn enter<T>(make: impl FnOnce() -> remote_signer::Result<T>) -> PyResult<T> {
    let _guard = runtime()?.enter();
    make().map_err(to_py)
}
