//! Times cross the boundary as Unix seconds (`int` or `float`), as `time.time()` gives them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// `seconds` since the epoch, or now when `None`.
pub fn at(seconds: Option<f64>) -> PyResult<SystemTime> {
    match seconds {
        None => Ok(SystemTime::now()),
        Some(s) => Duration::try_from_secs_f64(s)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .ok_or_else(|| {
                PyValueError::new_err("a time must be Unix seconds from 1970 on (time.time())")
            }),
    }
}

/// A lifetime in whole seconds.
pub fn seconds(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Unix seconds of `t` (0 for a time before 1970, which the crate never returns).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
