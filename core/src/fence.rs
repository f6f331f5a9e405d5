//! Whether this process may still write to the target for its sources.
//!
//! A cluster worker holds a lease in etcd; when the lease runs out the master gives the
//! worker's sources to another worker. The fence is the worker's own, conservative idea of
//! its lease: valid until the time a renewal was *sent* plus the TTL etcd granted, so it always
//! ends before etcd lets the lease go. Every commit to the target checks it first, so a worker
//! that was frozen (SIGSTOP, a long GC-like stall, a partition) never writes once it wakes up.
//! A worker that gets a new lease after losing one opens a new epoch: subtasks started under
//! the old lease stay fenced off for good (`pinned`), whatever happens to the new one.
//! Standalone has no lease: its fence never closes. Time is read from CLOCK_BOOTTIME
//! (`BootInstant`), which counts a suspend of the host, as etcd's clock does.

use crate::error::{Error, Result};
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A point in time on CLOCK_BOOTTIME. `Instant` (CLOCK_MONOTONIC) stops while the host is
/// suspended, and etcd's lease does not: after a resume a fence measured with `Instant`
/// would stay open for as long as the host slept, with the source already given to
/// another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootInstant(Duration);

impl BootInstant {
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        #[cfg(target_os = "linux")]
        let clock = libc::CLOCK_BOOTTIME;
        #[cfg(not(target_os = "linux"))]
        let clock = libc::CLOCK_MONOTONIC;
        // SAFETY: clock_gettime only writes the timespec it is given.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            // Cannot happen on Linux; were it to, the far future closes every fence.
            return BootInstant(Duration::MAX / 2);
        }
        BootInstant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    pub fn elapsed(&self) -> Duration {
        Self::now().saturating_duration_since(*self)
    }

    pub fn saturating_duration_since(&self, earlier: BootInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for BootInstant {
    type Output = BootInstant;
    fn add(self, d: Duration) -> BootInstant {
        BootInstant(self.0.saturating_add(d))
    }
}

impl Sub<Duration> for BootInstant {
    type Output = BootInstant;
    fn sub(self, d: Duration) -> BootInstant {
        BootInstant(self.0.saturating_sub(d))
    }
}

#[derive(Clone)]
pub struct Fence {
    inner: Arc<Inner>,
    /// The lease this handle belongs to; `None`: whichever is current (the worker's handle).
    epoch: Option<u64>,
}

struct Inner {
    base: BootInstant,
    /// Milliseconds after `base` until which writing is allowed; `u64::MAX`: always.
    valid_until: AtomicU64,
    /// Grows with each new lease.
    epoch: AtomicU64,
}

impl Fence {
    /// A fence that never closes (standalone).
    pub fn open() -> Self {
        Self::with(u64::MAX)
    }

    /// A fence that is closed until a lease opens it.
    pub fn closed() -> Self {
        Self::with(0)
    }

    fn with(ms: u64) -> Self {
        Fence {
            inner: Arc::new(Inner {
                base: BootInstant::now(),
                valid_until: AtomicU64::new(ms),
                epoch: AtomicU64::new(0),
            }),
            epoch: None,
        }
    }

    /// A handle for one subtask: closed for good once the current lease is replaced.
    pub fn pinned(&self) -> Fence {
        Fence {
            inner: self.inner.clone(),
            epoch: Some(self.inner.epoch.load(Ordering::SeqCst)),
        }
    }

    /// A new lease, valid until `at`: handles pinned to earlier leases stay closed.
    pub fn new_lease(&self, at: BootInstant) {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.extend_until(at);
    }

    /// The current lease was renewed: writing is allowed until `at`.
    pub fn extend_until(&self, at: BootInstant) {
        let ms = at.saturating_duration_since(self.inner.base).as_millis() as u64;
        self.inner.valid_until.store(ms, Ordering::SeqCst);
    }

    /// How long writing is still allowed (`Duration::MAX` for a fence that never closes).
    pub fn remaining(&self) -> Duration {
        let until = self.inner.valid_until.load(Ordering::SeqCst);
        if until == u64::MAX {
            return Duration::MAX;
        }
        Duration::from_millis(until).saturating_sub(self.inner.base.elapsed())
    }

    pub fn close(&self) {
        self.inner.valid_until.store(0, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        if self
            .epoch
            .is_some_and(|e| e != self.inner.epoch.load(Ordering::SeqCst))
        {
            return false;
        }
        let until = self.inner.valid_until.load(Ordering::SeqCst);
        until == u64::MAX || Duration::from_millis(until) > self.inner.base.elapsed()
    }

    /// `Err(LeaseLost)` once the lease may have run out.
    pub fn check(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Error::LeaseLost(
                "this worker's lease ran out; it stops writing for its sources".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_when_the_lease_runs_out() {
        let f = Fence::closed();
        assert!(f.check().is_err());
        f.new_lease(BootInstant::now() + Duration::from_millis(50));
        let sub = f.pinned();
        assert!(f.is_open() && sub.is_open());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!f.is_open() && !sub.is_open());
        // A new lease opens the worker's fence, not the old subtask's.
        f.new_lease(BootInstant::now() + Duration::from_secs(5));
        assert!(f.is_open() && !sub.is_open());
        assert!(f.pinned().is_open());
        assert!(Fence::open().pinned().is_open());
    }

    /// The fence's clock is the one `/proc/uptime` reads (CLOCK_BOOTTIME), which keeps
    /// counting while the host is suspended. (On a host never suspended CLOCK_MONOTONIC reads
    /// the same: this proves the clock's origin, not the suspend itself.)
    #[test]
    fn the_clock_counts_from_boot() {
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let now = BootInstant::now().0.as_secs_f64();
        assert!(
            (now - uptime).abs() < 1.0,
            "boot clock {now} s, uptime {uptime} s"
        );
    }
}
