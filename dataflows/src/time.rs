//! Event time: windows and watermarks.
//!
//! Event time is data: every record carries its own time ([`EventTime`], ms since the Unix epoch,
//! UTC). Timely's timestamps are the engine's *epochs* (one per input batch), never event time.
//!
//! Windows are tumbling, `[start, start + size)`, aligned to the Unix epoch.
//!
//! The watermark of a partition is `max event time seen - allowed lateness`; the engine's watermark
//! is the minimum over partitions that are neither idle nor ended, and it never goes back. A window
//! is *final* once the watermark reaches its end: a record whose window is final is late.
//!
//! ```
//! use observebridge_dataflows::time::{window_start, WatermarkTracker};
//! let mut wm = WatermarkTracker::new(120_000);
//! wm.observe(0, 1_000_000);
//! wm.observe(1, 900_000);
//! assert_eq!(wm.watermark(), Some(900_000 - 120_000));
//! wm.set_idle(1, true);           // an idle partition does not hold the watermark back
//! assert_eq!(wm.watermark(), Some(1_000_000 - 120_000));
//! assert_eq!(window_start(61_000, 60_000), 60_000);
//! ```

use std::collections::BTreeMap;

pub use crate::record::EventTime;

/// Start of the tumbling window of `size_ms` that holds `ts` (works for times before 1970 too).
pub fn window_start(ts: EventTime, size_ms: i64) -> EventTime {
    ts.div_euclid(size_ms) * size_ms
}

/// True when the window `[start, start + size_ms)` is final under `watermark`.
pub fn window_is_final(start: EventTime, size_ms: i64, watermark: Option<EventTime>) -> bool {
    watermark.is_some_and(|wm| start.saturating_add(size_ms) <= wm)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PartitionClock {
    max_ts: Option<EventTime>,
    idle: bool,
    ended: bool,
}

/// The watermark of a set of input partitions.
///
/// Fed by the dataflow at each epoch with the partitions' largest event times (from the
/// decoders) and the driver's idle/ended flags (decided by wall clock, which is why they are
/// handed in as data: every worker sees the same flags at the same epoch and so computes the same
/// watermark).
#[derive(Clone, Debug)]
pub struct WatermarkTracker {
    lateness_ms: i64,
    partitions: BTreeMap<u32, PartitionClock>,
    current: Option<EventTime>,
}

impl WatermarkTracker {
    pub fn new(lateness_ms: i64) -> Self {
        Self { lateness_ms, partitions: BTreeMap::new(), current: None }
    }

    /// Notes that `partition` produced a record with event time `ts`; the partition is active.
    pub fn observe(&mut self, partition: u32, ts: EventTime) {
        let clock = self.partitions.entry(partition).or_default();
        clock.max_ts = Some(clock.max_ts.map_or(ts, |m| m.max(ts)));
        clock.idle = false;
    }

    /// Registers a partition before it has produced anything: it holds the watermark back until
    /// it produces a record or is declared idle. `max_ts` restores the clock after a restart.
    pub fn register(&mut self, partition: u32, max_ts: Option<EventTime>) {
        let clock = self.partitions.entry(partition).or_default();
        if let Some(ts) = max_ts {
            clock.max_ts = Some(clock.max_ts.map_or(ts, |m| m.max(ts)));
        }
    }

    /// Marks a partition idle (it no longer holds the watermark back) or active again.
    pub fn set_idle(&mut self, partition: u32, idle: bool) {
        self.partitions.entry(partition).or_default().idle = idle;
    }

    /// Marks a bounded partition as finished: it will never produce again.
    pub fn set_ended(&mut self, partition: u32) {
        self.partitions.entry(partition).or_default().ended = true;
    }

    /// The watermark: `min(max_ts - lateness)` over active partitions, `EventTime::MAX` once every
    /// partition has ended, unchanged while every partition is idle; never decreasing.
    pub fn watermark(&mut self) -> Option<EventTime> {
        let all_ended = !self.partitions.is_empty() && self.partitions.values().all(|c| c.ended);
        let candidate = if all_ended {
            Some(EventTime::MAX)
        } else {
            let mut active = self.partitions.values().filter(|c| !c.idle && !c.ended).peekable();
            if active.peek().is_none() {
                None
            } else {
                // A registered partition that has produced nothing holds the watermark back.
                active
                    .map(|c| c.max_ts.map(|m| m.saturating_sub(self.lateness_ms)))
                    .try_fold(EventTime::MAX, |acc, m| m.map(|m| acc.min(m)))
            }
        };
        if let Some(c) = candidate {
            self.current = Some(self.current.map_or(c, |cur| cur.max(c)));
        }
        self.current
    }

    /// Largest event time seen on a partition.
    pub fn max_event_time(&self, partition: u32) -> Option<EventTime> {
        self.partitions.get(&partition).and_then(|c| c.max_ts)
    }

    pub fn lateness_ms(&self) -> i64 {
        self.lateness_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_assignment_is_aligned_and_half_open() {
        assert_eq!(window_start(0, 60_000), 0);
        assert_eq!(window_start(59_999, 60_000), 0);
        assert_eq!(window_start(60_000, 60_000), 60_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
        assert_eq!(window_start(1_700_000_123_456, 300_000), 1_700_000_100_000);
        assert!(!window_is_final(0, 60_000, None));
        assert!(!window_is_final(0, 60_000, Some(59_999)));
        assert!(window_is_final(0, 60_000, Some(60_000)));
    }

    #[test]
    fn watermark_is_min_over_partitions_minus_lateness() {
        let mut wm = WatermarkTracker::new(1_000);
        assert_eq!(wm.watermark(), None);
        wm.observe(0, 10_000);
        assert_eq!(wm.watermark(), Some(9_000));
        wm.observe(1, 5_000);
        // Never goes back: partition 1 is behind, but the watermark stays where it was.
        assert_eq!(wm.watermark(), Some(9_000));
        wm.observe(1, 20_000);
        wm.observe(0, 30_000);
        assert_eq!(wm.watermark(), Some(19_000));
    }

    #[test]
    fn idle_partition_does_not_hold_back_and_rejoins_when_active() {
        let mut wm = WatermarkTracker::new(0);
        wm.register(0, None);
        wm.register(1, None);
        wm.observe(0, 100);
        // Partition 1 has produced nothing: it holds the watermark back.
        assert_eq!(wm.watermark(), None);
        wm.set_idle(1, true);
        assert_eq!(wm.watermark(), Some(100));
        wm.observe(0, 200);
        assert_eq!(wm.watermark(), Some(200));
        // Partition 1 wakes up behind: it holds the watermark from now on, which does not go back.
        wm.observe(1, 150);
        wm.observe(0, 400);
        assert_eq!(wm.watermark(), Some(200));
        wm.observe(1, 300);
        assert_eq!(wm.watermark(), Some(300));
        // All idle: unchanged.
        wm.set_idle(0, true);
        wm.set_idle(1, true);
        assert_eq!(wm.watermark(), Some(300));
    }

    #[test]
    fn ended_partitions_release_everything() {
        let mut wm = WatermarkTracker::new(0);
        wm.observe(0, 100);
        wm.observe(1, 50);
        wm.set_ended(1);
        assert_eq!(wm.watermark(), Some(100));
        wm.set_ended(0);
        assert_eq!(wm.watermark(), Some(EventTime::MAX));
    }

    #[test]
    fn restored_clock_counts_as_seen() {
        let mut wm = WatermarkTracker::new(10);
        wm.register(3, Some(1_000));
        assert_eq!(wm.watermark(), Some(990));
        assert_eq!(wm.max_event_time(3), Some(1_000));
    }
}
