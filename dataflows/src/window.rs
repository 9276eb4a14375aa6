//! The windowed-aggregate operator: tumbling event-time windows, emit on update, lateness,
//! finality and bounded state. Every windowed view (`metric_1m`, later `service_call_5m` and
//! `log_pattern_5m`) is a [`WindowedView`] run by [`windowed`].
//!
//! Contract, per epoch `t` (a timely timestamp) once both inputs are complete up to `t`:
//! 1. every record of epoch `t` whose window is already final under the watermark known *before*
//!    `t` becomes a [`WindowEvent::Late`] dead letter and changes nothing;
//! 2. every other record is folded into its `(window, key)` state, and each touched row is
//!    emitted as a differential change: `(old row, -1)` when one was emitted before, `(new, +1)`;
//! 3. if the watermark moved at `t`, every window it made final emits its rows once as
//!    [`WindowEvent::Final`] and leaves memory: state is bounded by window + lateness, not uptime.
//!
//! The outcome depends only on which records arrive in which epoch and on the watermark per
//! epoch, never on how records are spread over workers or batched inside an epoch: records are
//! exchanged by [`WindowedView::route`], so each `(window, key)` lives on exactly one worker.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use serde::Serialize;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::record::{DeadLetter, EventTime, Origin};
use crate::time::{window_is_final, window_start};

/// A view computed over tumbling event-time windows.
///
/// Implementors say how to read a record (time, key, route) and how to fold it into a running
/// state; [`windowed`] does the rest. `route` must be a function of the key only (so that all
/// records of a key meet on one worker).
pub trait WindowedView: Clone + 'static {
    type Input: ExchangeData + Serialize;
    type Key: Hash + Eq + Clone + 'static;
    /// What of a record is folded into the state once its key is taken out.
    type Part;
    type State: 'static;
    type Row: ExchangeData + Ord + Clone + std::fmt::Debug;

    /// Window size in milliseconds.
    fn window_ms(&self) -> i64;
    fn event_time(&self, input: &Self::Input) -> EventTime;
    fn origin(&self, input: &Self::Input) -> Origin;
    /// Hash of the record's key: decides the worker.
    fn route(&self, input: &Self::Input) -> u64;
    /// Consumes the record: its key and the part to fold into the state. Called once per record
    /// on the hot path, so it moves, never clones.
    fn split(&self, input: Self::Input) -> (Self::Key, Self::Part);
    fn new_state(&self) -> Self::State;
    fn fold(&self, state: &mut Self::State, part: Self::Part);
    /// The row of a `(window, key)` state; `None` while the state holds nothing to report (a
    /// row is retracted if its state goes back to nothing).
    fn row(&self, window_start: EventTime, key: &Self::Key, state: &Self::State) -> Option<Self::Row>;
}

/// What [`windowed`] emits.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WindowEvent<R> {
    /// A differential change of the view: a row and +1 or -1.
    Change(R, isize),
    /// A row of a window that just became final (emitted once, at the epoch it became final).
    Final(R),
    /// A record that arrived after its window was final.
    Late(DeadLetter),
    /// How many (window, key) aggregates this worker holds after the epoch.
    Live(u64),
}

struct Entry<S, R> {
    state: S,
    emitted: Option<R>,
    touched: bool,
}

struct Pending<I> {
    capability: Capability<u64>,
    records: Vec<I>,
    watermark: Option<EventTime>,
}

/// Runs `view` over `records`, with the engine's watermark stream (one `Option<EventTime>` per
/// epoch at which it changed, identical on every worker).
pub fn windowed<'scope, V: WindowedView>(
    view: V,
    name: &str,
    records: StreamVec<'scope, u64, V::Input>,
    watermarks: StreamVec<'scope, u64, EventTime>,
) -> StreamVec<'scope, u64, WindowEvent<V::Row>> {
    let router = view.clone();
    let route = move |r: &V::Input| router.route(r);
    records.binary_frontier(watermarks, Exchange::new(route), Pipeline, name, move |_cap, _info| {
        let mut pending: BTreeMap<u64, Pending<V::Input>> = BTreeMap::new();
        let mut windows: BTreeMap<EventTime, HashMap<V::Key, Entry<V::State, V::Row>, Xxh3DefaultBuilder>> = BTreeMap::new();
        let mut watermark: Option<EventTime> = None;
        let mut live: u64 = 0;
        let size = view.window_ms();

        move |(input1, frontier1), (input2, frontier2), output| {
            input1.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    let time = *cap.time();
                    let entry = pending.entry(time).or_insert_with(|| Pending { capability: cap, records: Vec::new(), watermark: None });
                    entry.records.append(data);
                }
            });
            input2.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    let time = *cap.time();
                    let entry = pending.entry(time).or_insert_with(|| Pending { capability: cap, records: Vec::new(), watermark: None });
                    if let Some(wm) = data.iter().copied().max() {
                        entry.watermark = Some(entry.watermark.map_or(wm, |w| w.max(wm)));
                    }
                }
            });

            while let Some(entry) = pending.first_entry() {
                let time = *entry.key();
                if frontier1.less_equal(&time) || frontier2.less_equal(&time) {
                    break;
                }
                let Pending { capability, records, watermark: new_watermark } = entry.remove();
                let mut session = output.session(&capability);
                let mut touched: Vec<(EventTime, V::Key)> = Vec::new();
                for record in records {
                    let ts = view.event_time(&record);
                    let start = window_start(ts, size);
                    if window_is_final(start, size, watermark) {
                        let payload = serde_json::to_vec(&record).unwrap_or_default();
                        session.give(WindowEvent::Late(DeadLetter {
                            kind: "late".to_string(),
                            reason: format!(
                                "late record: event time {} falls in window [{}, {}), which the watermark {} has already made final",
                                fmt_ms(ts), fmt_ms(start), fmt_ms(start + size), watermark.map_or_else(String::new, fmt_ms)
                            ),
                            origin: view.origin(&record),
                            payload,
                        }));
                        continue;
                    }
                    let (key, part) = view.split(record);
                    let entry = match windows.entry(start).or_default().entry(key) {
                        Slot::Occupied(slot) => {
                            if !slot.get().touched {
                                touched.push((start, slot.key().clone()));
                            }
                            slot.into_mut()
                        }
                        Slot::Vacant(slot) => {
                            live += 1;
                            touched.push((start, slot.key().clone()));
                            slot.insert(Entry { state: view.new_state(), emitted: None, touched: false })
                        }
                    };
                    entry.touched = true;
                    view.fold(&mut entry.state, part);
                }
                for (start, key) in touched {
                    let Some(entry) = windows.get_mut(&start).and_then(|w| w.get_mut(&key)) else { continue };
                    entry.touched = false;
                    let row = view.row(start, &key, &entry.state);
                    if entry.emitted != row {
                        if let Some(old) = entry.emitted.take() {
                            session.give(WindowEvent::Change(old, -1));
                        }
                        if let Some(new) = &row {
                            session.give(WindowEvent::Change(new.clone(), 1));
                        }
                        entry.emitted = row;
                    }
                }
                if let Some(wm) = new_watermark {
                    watermark = Some(watermark.map_or(wm, |w| w.max(wm)));
                    while let Some(first) = windows.first_entry() {
                        if !window_is_final(*first.key(), size, watermark) {
                            break;
                        }
                        let entries = first.remove();
                        live -= entries.len() as u64;
                        for (_, entry) in entries {
                            if let Some(row) = entry.emitted {
                                session.give(WindowEvent::Final(row));
                            }
                        }
                    }
                }
                session.give(WindowEvent::Live(live));
            }
        }
    })
}

/// Runs `logic` once per complete epoch, in epoch order, with the epoch's records (exchanged
/// between workers by `route`) and the epoch's new watermark (the largest the watermark stream
/// carried at that epoch, if any); `logic` pushes the epoch's output. The shape of every stateful
/// operator that works epoch by epoch on the engine's watermark (pairing, the live graph, the
/// miners).
pub fn epoch_by_epoch<'scope, D, O, R, L>(
    name: &str,
    records: StreamVec<'scope, u64, D>,
    watermarks: StreamVec<'scope, u64, EventTime>,
    route: R,
    mut logic: L,
) -> StreamVec<'scope, u64, O>
where
    D: ExchangeData,
    O: Clone + 'static,
    R: Fn(&D) -> u64 + 'static,
    L: FnMut(Vec<D>, Option<EventTime>, &mut Vec<O>) + 'static,
{
    records.binary_frontier(watermarks, Exchange::new(route), Pipeline, name, move |_cap, _info| {
        let mut pending: BTreeMap<u64, (Capability<u64>, Vec<D>, Option<EventTime>)> = BTreeMap::new();
        let mut out = Vec::new();
        move |(input1, frontier1), (input2, frontier2), output| {
            input1.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    pending.entry(*cap.time()).or_insert_with(|| (cap, Vec::new(), None)).1.append(data);
                }
            });
            input2.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(0) {
                    let entry = pending.entry(*cap.time()).or_insert_with(|| (cap, Vec::new(), None));
                    if let Some(wm) = data.iter().copied().max() {
                        entry.2 = Some(entry.2.map_or(wm, |w| w.max(wm)));
                    }
                }
            });
            while let Some(entry) = pending.first_entry() {
                let time = *entry.key();
                if frontier1.less_equal(&time) || frontier2.less_equal(&time) {
                    break;
                }
                let (cap, records, watermark) = entry.remove();
                logic(records, watermark, &mut out);
                if !out.is_empty() {
                    output.session(&cap).give_iterator(out.drain(..));
                }
            }
        }
    })
}

/// RFC 3339 rendering of event time for messages.
pub fn fmt_ms(ms: EventTime) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => format!("{ms}ms"),
    }
}
