//! One tokio runtime per process, shared by every key: backends and surrogate rotation spawn
//! background tasks on it, so it outlives any single call.
//!
//! A forked child (gunicorn with `--preload`, multiprocessing's fork start method) has none of
//! its parent's runtime threads. It gets a runtime of its own, and objects opened before the fork,
//! whose connections and background tasks belong to the parent's runtime, refuse to work there
//! with an error saying what to do, instead of waiting forever.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use remote_signer::{Error, ErrorKind};
use tokio::runtime::Runtime;

use crate::errors::to_py;

/// The runtime and the process it was started in. A runtime left behind by a fork is leaked, not
/// dropped: dropping it would wait for worker threads that do not exist in the child.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The process an object was made in; calls check it with [`Origin::check`].
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pid: u32,
}

impl Origin {
    /// This process.
    pub fn here() -> Self {
        Origin {
            pid: std::process::id(),
        }
    }

    /// Errors if this process is a fork of the one the object was made in.
    pub fn check(self) -> PyResult<()> {
        if self.pid == std::process::id() {
            Ok(())
        } else {
            Err(to_py(Error::with_context(
                ErrorKind::Config,
                "this object was created before the process forked; create keys and signers \
                 in each worker process, after the fork",
            )))
        }
    }
}

/// This process's runtime, started on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((started_in, runtime)) = *slot
        && started_in == pid
    {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("remote-signer")
        .enable_all()
        .build()
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start the tokio runtime: {e}"
            ))
        })?;
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *slot = Some((pid, runtime));
    Ok(runtime)
}

/// Runs `future` to completion on the runtime with the GIL released, so other Python threads
/// run while a key service answers. `origin` is where the objects the future uses were made.
pub fn wait<T, F>(py: Python<'_>, origin: Origin, future: F) -> PyResult<T>
where
    F: Future<Output = remote_signer::Result<T>> + Send,
    T: Send,
{
    origin.check()?;
    let runtime = runtime()?;
    py.detach(|| runtime.block_on(future)).map_err(to_py)
}

/// Runs `make` inside the runtime's context (for constructors that spawn background tasks).
pub fn enter<T>(make: impl FnOnce() -> remote_signer::Result<T>) -> PyResult<T> {
    let _guard = runtime()?.enter();
    make().map_err(to_py)
}
