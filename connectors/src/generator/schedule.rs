//! Arrival order: which message of a stream comes next, with deterministic disorder.
//!
//! A stream produces one message per unit (a pod, for metrics) every tick (a scrape), or, for a
//! stream of changes (Kubernetes watch events), a listed number of messages at listed ticks
//! ([`Plan`]). Each message gets an arrival time, its tick's event time plus a delay drawn from
//! the seed and its coordinates ([`Disorder`]), and messages are handed out in arrival order.
//! Messages are generated lazily, only as far as needed to know that no message still to come
//! can arrive before the one at the head of the queue: without disorder the queue holds one
//! message.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::config::Disorder;
use super::noise;

/// A message waiting to be handed out; ordered by arrival, then ordinary before late (so a late
/// message comes after everything that arrives at the same instant), then generation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pending {
    /// Event time plus delay, ns since the epoch.
    pub arrival_ns: u64,
    /// Delayed by `late_by`.
    pub late: bool,
    /// Generation order.
    pub seq: u64,
    /// Tick (scrape index) of the message.
    pub tick: u64,
    /// Unit (pod slot) of the message.
    pub unit: u64,
}

/// Which ticks of a stream have messages, and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The same number of units every tick.
    Every(u64),
    /// `(tick, units)` in increasing tick order; ticks not listed, and every tick after the
    /// last one listed, have none.
    Listed(Vec<(u64, u64)>),
}

impl Plan {
    /// The first tick with messages at or after position `cursor` of a listed plan (the tick
    /// `cursor` for `Every`), and its units; 0 units when there is none.
    fn at(&self, cursor: u64) -> (u64, u64) {
        match self {
            Plan::Every(units) => (cursor, *units),
            Plan::Listed(ticks) => usize::try_from(cursor)
                .ok()
                .and_then(|c| ticks.get(c))
                .copied()
                .unwrap_or((u64::MAX, 0)),
        }
    }
}

/// The arrival queue of one stream.
pub(crate) struct Schedule {
    seed: u64,
    /// Keeps the delays of different streams apart.
    delay_tag: u64,
    start_ns: u64,
    interval_ns: u64,
    /// Ticks to generate; `None` for no end.
    ticks: Option<u64>,
    plan: Plan,
    /// Position in `plan` of the next tick to generate (the tick itself for `Every`).
    cursor: u64,
    /// Units of the next tick to generate; 0 once the plan has no more.
    units: u64,
    max_delay_ns: u64,
    late_fraction: f64,
    late_by_ns: u64,
    /// The next message to generate: its tick and unit.
    next_tick: u64,
    next_unit: u64,
    seq: u64,
    pending: BinaryHeap<Reverse<Pending>>,
}

/// What a [`Schedule`] is built from.
pub(crate) struct ScheduleSpec<'a> {
    pub seed: u64,
    pub delay_tag: u64,
    pub start_ns: u64,
    pub interval_ns: u64,
    pub ticks: Option<u64>,
    pub plan: Plan,
    pub disorder: &'a Disorder,
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Schedule {
    pub(crate) fn new(spec: ScheduleSpec<'_>) -> Schedule {
        let (next_tick, units) = spec.plan.at(0);
        Schedule {
            seed: spec.seed,
            delay_tag: spec.delay_tag,
            start_ns: spec.start_ns,
            interval_ns: spec.interval_ns,
            ticks: spec.ticks,
            plan: spec.plan,
            cursor: 0,
            units,
            max_delay_ns: nanos(spec.disorder.max_delay),
            late_fraction: spec.disorder.late_fraction,
            late_by_ns: nanos(spec.disorder.late_by),
            next_tick,
            next_unit: 0,
            seq: 0,
            pending: BinaryHeap::new(),
        }
    }

    fn tick_time_ns(&self, tick: u64) -> u64 {
        self.start_ns
            .saturating_add(tick.saturating_mul(self.interval_ns))
    }

    fn more_ticks(&self) -> bool {
        self.units > 0 && self.ticks.is_none_or(|t| self.next_tick < t)
    }

    /// The next message in arrival order without taking it; `None` once a bounded stream has
    /// handed out everything.
    pub(crate) fn peek(&mut self) -> Option<Pending> {
        loop {
            let more = self.more_ticks();
            // Messages not generated yet arrive at or after the next tick's time, and come after
            // everything generated before them that arrives at the same instant, unless late.
            let horizon = self.tick_time_ns(self.next_tick);
            match self.pending.peek() {
                Some(Reverse(top))
                    if !more
                        || top.arrival_ns < horizon
                        || (top.arrival_ns == horizon && !top.late) =>
                {
                    return Some(*top);
                }
                None if !more => return None,
                _ => self.generate_one(),
            }
        }
    }

    /// Takes the next message in arrival order.
    pub(crate) fn pop(&mut self) -> Option<Pending> {
        let next = self.peek()?;
        self.pending.pop();
        Some(next)
    }

    fn generate_one(&mut self) {
        let (tick, unit) = (self.next_tick, self.next_unit);
        let late = self.late_fraction > 0.0
            && noise::unit(self.seed, &[self.delay_tag, tick, unit]) < self.late_fraction;
        let delay = if late {
            // Beyond every ordinary delay: everything up to `late_by` newer arrives first.
            self.late_by_ns.saturating_add(self.max_delay_ns)
        } else if self.max_delay_ns > 0 {
            (noise::unit(self.seed, &[self.delay_tag, tick, unit, 1])
                * (self.max_delay_ns as f64 + 1.0)) as u64
        } else {
            0
        };
        self.pending.push(Reverse(Pending {
            arrival_ns: self.tick_time_ns(tick).saturating_add(delay),
            late,
            seq: self.seq,
            tick,
            unit,
        }));
        self.seq += 1;
        self.next_unit += 1;
        if self.next_unit == self.units {
            self.next_unit = 0;
            self.cursor += 1;
            (self.next_tick, self.units) = self.plan.at(self.cursor);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn drain(disorder: &Disorder, ticks: u64, units: u64) -> Vec<Pending> {
        let mut s = Schedule::new(ScheduleSpec {
            seed: 5,
            delay_tag: 9,
            start_ns: 1_000_000_000_000,
            interval_ns: 10_000_000_000,
            ticks: Some(ticks),
            plan: Plan::Every(units),
            disorder,
        });
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn without_disorder_messages_come_in_generation_order() {
        let out = drain(&Disorder::default(), 5, 3);
        assert_eq!(out.len(), 15);
        let mut s = Schedule::new(ScheduleSpec {
            seed: 5,
            delay_tag: 9,
            start_ns: 0,
            interval_ns: 10,
            ticks: None,
            plan: Plan::Every(1000),
            disorder: &Disorder::default(),
        });
        for _ in 0..2500 {
            s.pop();
            assert!(s.pending.len() <= 1, "in order, nothing waits");
        }
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, p)| p.seq == i as u64 && !p.late)
        );
    }

    #[test]
    fn disorder_reorders_by_arrival_and_keeps_every_message() {
        let disorder = Disorder {
            max_delay: Duration::from_secs(25),
            late_fraction: 0.1,
            late_by: Duration::from_secs(180),
        };
        let out = drain(&disorder, 60, 4);
        assert_eq!(out.len(), 240);
        assert!(
            out.windows(2).all(|w| w[0] < w[1]),
            "handed out in arrival order"
        );
        let mut seqs: Vec<u64> = out.iter().map(|p| p.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..240).collect::<Vec<_>>());
        assert!(out.iter().any(|p| p.late));
        assert!(
            out.windows(2).any(|w| w[0].seq > w[1].seq),
            "some messages overtake others"
        );
    }

    #[test]
    fn listed_plans_skip_empty_ticks_and_end() {
        let listed = |ticks: Option<u64>, disorder: &Disorder| {
            let mut s = Schedule::new(ScheduleSpec {
                seed: 5,
                delay_tag: 9,
                start_ns: 0,
                interval_ns: 10,
                ticks,
                plan: Plan::Listed(vec![(0, 3), (4, 1), (1_000_000, 2)]),
                disorder,
            });
            std::iter::from_fn(move || s.pop())
                .map(|p| (p.tick, p.unit))
                .collect::<Vec<_>>()
        };
        let ordered = listed(None, &Disorder::default());
        assert_eq!(
            ordered,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (4, 0),
                (1_000_000, 0),
                (1_000_000, 1)
            ]
        );
        assert_eq!(listed(Some(5), &Disorder::default()), ordered[..4]);
        assert_eq!(listed(Some(4), &Disorder::default()), ordered[..3]);
        let disorder = Disorder {
            max_delay: Duration::from_nanos(60),
            late_fraction: 0.3,
            late_by: Duration::from_nanos(100),
        };
        let mut shuffled = listed(None, &disorder);
        shuffled.sort_unstable();
        assert_eq!(shuffled, ordered);
        let mut empty = Schedule::new(ScheduleSpec {
            seed: 5,
            delay_tag: 9,
            start_ns: 0,
            interval_ns: 10,
            ticks: None,
            plan: Plan::Listed(Vec::new()),
            disorder: &Disorder::default(),
        });
        assert_eq!(empty.pop(), None);
    }
}
