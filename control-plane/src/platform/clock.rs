//! The one source of "now". Everything that stamps or compares time asks a [`Clock`], so tests
//! (and, later, test clocks) can hold time still or move it deliberately.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(unix: i64) -> Self {
        ManualClock(AtomicI64::new(unix))
    }

    pub fn set(&self, unix: i64) {
        self.0.store(unix, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0.load(Ordering::SeqCst), 0)
            .single()
            .unwrap_or_default()
    }
}

pub fn rfc3339(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A day as people read it on the hosted pages: `May 1, 2026` (UTC).
pub fn human_date(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .unwrap_or_default()
        .format("%B %-d, %Y")
        .to_string()
}

/// A moment as people read it on the hosted pages: `May 1, 2026, 14:05 UTC`.
pub fn human_time(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .unwrap_or_default()
        .format("%B %-d, %Y, %H:%M UTC")
        .to_string()
}

/// Kelviq's timestamp format, `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
pub fn kelviq_time(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

pub fn date(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_for_people() {
        // 2026-05-01T14:05:09Z
        let t = 1_777_644_309;
        assert_eq!(rfc3339(t), "2026-05-01T14:05:09Z");
        assert_eq!(human_date(t), "May 1, 2026");
        assert_eq!(human_time(t), "May 1, 2026, 14:05 UTC");
    }
}
