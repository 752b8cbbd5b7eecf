//! Time as a parameter: the [`Clock`] trait, the system clock, a clock tests can set, and the
//! reading of Unix seconds ([`from_unix_seconds`]).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the current time comes from.
///
/// Everything in this crate that depends on time reads it through a `Clock` (or takes `now`
/// as a parameter), so tests can run on a [`ManualClock`].
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until it is moved: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: SystemTime) -> Self {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// A clock showing `seconds` after the Unix epoch, as [`from_unix_seconds`] reads them.
    pub fn at_unix(seconds: u64) -> Self {
        Self::new(from_unix_seconds(seconds))
    }

    /// Sets the time.
    pub fn set(&self, now: SystemTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whole seconds since the Unix epoch (0 for times before it), as JWT claims count time.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whole seconds since the Unix epoch, for claims that must not silently become 0.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a time before 1970.
pub(crate) fn unix_seconds_strict(t: SystemTime) -> crate::Result<u64> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| crate::Error::invalid_input("time before 1970"))
}

/// Errors unless `now` lies in `not_before ..= expires_at` (all Unix seconds), widened by
/// `leeway` on both sides: the one validity-window check for certificates and tokens. `what`
/// names the thing in the message (`"token is not yet valid"`, `"certificate has expired"`).
///
/// # Errors
/// [`ErrorKind::Expired`](crate::ErrorKind::Expired) for a thing not yet valid or expired.
pub(crate) fn check_window(
    now: u64,
    not_before: u64,
    expires_at: u64,
    leeway: Duration,
    what: &str,
) -> crate::Result<()> {
    let leeway = leeway.as_secs();
    let expired =
        |why: &str| crate::Error::with_context(crate::ErrorKind::Expired, format!("{what} {why}"));
    if now.saturating_add(leeway) < not_before {
        return Err(expired("is not yet valid"));
    }
    if now > expires_at.saturating_add(leeway) {
        return Err(expired("has expired"));
    }
    Ok(())
}

/// The time `seconds` after the Unix epoch, as JWT claims and `--issued-at` count time.
///
/// Exact for every time up to `u32::MAX` seconds (2106-02-07T06:28:15Z) on every platform, and
/// beyond that as far as the platform's [`SystemTime`] reaches; a time past its reach
/// saturates to that instant in 2106 instead of panicking, so a claim from the wire can never
/// crash a reader.
pub fn from_unix_seconds(seconds: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u32::MAX.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn the_window_holds_its_ends_and_the_leeway_and_nothing_beyond() {
        let leeway = Duration::from_secs(5);
        for now in [95, 100, 150, 200, 205] {
            check_window(now, 100, 200, leeway, "token").unwrap();
        }
        let early = check_window(94, 100, 200, leeway, "token").unwrap_err();
        assert_eq!(early.kind(), ErrorKind::Expired);
        assert!(
            early.to_string().contains("token is not yet valid"),
            "{early}"
        );
        let late = check_window(206, 100, 200, leeway, "certificate").unwrap_err();
        assert_eq!(late.kind(), ErrorKind::Expired);
        assert!(
            late.to_string().contains("certificate has expired"),
            "{late}"
        );
    }

    #[test]
    fn the_window_saturates_instead_of_overflowing() {
        let leeway = Duration::from_secs(u64::MAX);
        check_window(u64::MAX, u64::MAX, u64::MAX, leeway, "token").unwrap();
        check_window(0, u64::MAX, u64::MAX, Duration::ZERO, "token").unwrap_err();
        check_window(u64::MAX, 0, u64::MAX - 1, Duration::ZERO, "token").unwrap_err();
    }

    #[test]
    fn unix_seconds_round_trip_and_refuse_or_floor_times_before_1970() {
        let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_999);
        assert_eq!(unix_seconds(t), 1_800_000_000);
        assert_eq!(unix_seconds_strict(t).unwrap(), 1_800_000_000);
        assert_eq!(
            from_unix_seconds(1_800_000_000),
            UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        );
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(unix_seconds(before), 0);
        let err = unix_seconds_strict(before).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(from_unix_seconds(u64::MAX) > UNIX_EPOCH);
    }
}
