//! Pairing: spans to calls, in event time.
//!
//! Spans are exchanged by trace id, so every span of a trace meets on one worker; a [`Pairer`]
//! there turns them into [`Call`]s by these rules (architecture section 4, issue "traces"):
//!
//! - **client -> server**: a CLIENT (PRODUCER) span in service A whose child SERVER (CONSUMER)
//!   span — same trace, `parent_span_id` = the client's `span_id` — is in service B makes one
//!   A -> B call; `messaging_system` when either side is a producer/consumer, else `direct`.
//! - **server -> server**: a SERVER span whose parent is a SERVER span of another service makes
//!   an edge between the two services (Tempo issue 3414: proxies and meshes that do not emit a
//!   client span).
//! - **virtual nodes**: a client span still unpaired when its wait has passed becomes an edge to
//!   the node its attributes name: `db.system`/`db.name` -> `urn:db:<system>/<name>`
//!   (`database`), `messaging.system` -> `urn:queue:<system>/<destination>`
//!   (`messaging_system`), `peer.service` -> `urn:k8s:svc:<caller's namespace>/<peer.service>`,
//!   `server.address` -> `urn:ext:<host>` (both `virtual_node`); with none of them,
//!   `urn:ext:unknown` (as the Collector's `unknown`).
//! - **uninstrumented callers**: a root SERVER span is called by the service its `peer.service`
//!   names ([`CallerNaming::Peer`], the default), else by `urn:ext:user`; a root CONSUMER span by
//!   the queue its `messaging.system` names. [`CallerNaming::User`] always says `user`, as the
//!   Collector and Tempo do.
//! - **self-correction**: a virtual edge stays correctable until its window is final: a late
//!   server span that completes the pair retracts it (`-1`) and adds the paired call (`+1`).
//! - **error**: either side's error (status ERROR, HTTP 5xx, gRPC server fault, see the decoder).
//!   **latency**: the client's duration when there is a client span, else the server's; the
//!   server's duration is kept as well. **weight**: the caller side's sampling multiplier.
//!
//! # Time
//! Waiting is in event time: a span waits until the engine watermark reaches `ts + wait`, never
//! for a wall clock, so a replay of the same spans makes the same calls. A call's time is its
//! client span's end (the server span's when there is no client span). Calls are decided at
//! most one wait after their time, so the call views run on the watermark minus the wait
//! ([`shift`]); a span whose call window is already final under that shifted watermark is late
//! and becomes a dead letter.
//!
//! Within an epoch the outcome does not depend on arrival order: all arrivals are matched
//! before paired client spans are let go, and expiry happens after the arrivals.
//!
//! # State
//! Spans waiting for their partner are held until their wait has passed (so the memory is the
//! spans of `lateness + wait` of event time); paired CLIENT spans leave at once; expired client
//! spans that made a virtual edge stay as one compact record each until their window is final,
//! so a late partner can still correct them. Nothing grows with uptime.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use xxhash_rust::xxh3::xxh3_64;

use crate::record::{DeadLetter, EventTime, Peer, Span, SpanKind};
use crate::time::{window_is_final, window_start};
use crate::views::service_call_5m::{Call, ConnectionType};
use crate::window::{epoch_by_epoch, fmt_ms};

/// Who calls a root SERVER span.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerNaming {
    /// The service named by the server span's `peer.service`, else `user`.
    #[default]
    Peer,
    /// Always `user` (the Collector's and Tempo's behaviour).
    User,
}

/// Pairing parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingConfig {
    /// How long (event time) a span waits for its partner.
    pub wait_ms: i64,
    /// The call views' window: a span is held for correction until its call window is final.
    pub window_ms: i64,
    pub caller: CallerNaming,
}

impl Default for PairingConfig {
    fn default() -> Self {
        Self { wait_ms: 10_000, window_ms: 300_000, caller: CallerNaming::Peer }
    }
}

/// The call views' watermark for an engine watermark: one wait earlier (end of input stays so).
pub fn shift(watermark: EventTime, wait_ms: i64) -> EventTime {
    if watermark == EventTime::MAX { watermark } else { watermark.saturating_sub(wait_ms) }
}

/// What pairing has done, cumulative per worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingCounters {
    /// Client/server (and producer/consumer) pairs made.
    pub paired: u64,
    /// Server -> server edges made.
    pub server_to_server: u64,
    /// Root server spans given a virtual caller.
    pub root_callers: u64,
    /// Client spans that expired unpaired and made a virtual edge.
    pub virtual_edges: u64,
    /// Virtual edges retracted because a late span completed the pair.
    pub corrected: u64,
    /// Server spans whose parent never came within the wait (no edge).
    pub expired_unpaired: u64,
    /// Spans later than the call window allows (dead-lettered).
    pub late: u64,
    /// Spans seen twice (same tenant, trace and span id) while the first was held; ignored.
    pub duplicates: u64,
    /// Spans held now, waiting for a partner.
    pub waiting: u64,
    /// Expired client spans held now for correction.
    pub correctable: u64,
}

/// What the pairing operator emits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PairEvent {
    Call(Call),
    Late(DeadLetter),
    /// The worker's counters after an epoch.
    Counters(PairingCounters),
}

/// `(tenant hash, trace id, span id)`.
type SpanKey = (u64, [u8; 16], [u8; 8]);

/// A cheap hasher for [`SpanKey`]s: their bytes are already hashes (the tenant's) or random ids
/// (trace and span ids), so a multiply-fold per word and a final mix spread them well, at a
/// fraction of the cost of streaming xxh3 over a 32-byte tuple.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

const FOLD: u64 = 0x9e37_79b9_7f4a_7c15;

impl KeyHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(FOLD).rotate_left(29);
    }
}

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
    }
    #[inline]
    fn write_u64(&mut self, w: u64) {
        self.word(w);
    }
    #[inline]
    fn write_usize(&mut self, w: usize) {
        self.word(w as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

/// Expiry is kept per second of due time: an insert is a push onto the second's list (one
/// ordered-map lookup per distinct second, not a log-n insert per span).
const EXPIRY_BUCKET_MS: i64 = 1_000;

struct Held {
    span: Span,
    /// For clients: paired with a server. For servers: its caller is known (paired, root, or
    /// server parent).
    resolved: bool,
}

/// An expired client span that made a virtual edge: enough to retract it and pair it late.
struct Correctable {
    call: Call,
    kind: SpanKind,
    client_error: bool,
    /// A producer whose virtual edge was already replaced keeps pairing (fan-out), without
    /// retracting again.
    retracted: bool,
}

/// The pairing state of one worker. Feed it each epoch's spans with [`arrive`](Self::arrive),
/// then the epoch's new watermark (if any) with [`advance`](Self::advance).
pub struct Pairer {
    cfg: PairingConfig,
    watermark: Option<EventTime>,
    held: HashMap<SpanKey, Held, KeyHash>,
    /// Server spans waiting for their parent, by the parent's key.
    children: HashMap<SpanKey, Vec<[u8; 8]>, KeyHash>,
    /// `(due, key)` of held spans, by the second of `due` (see [`EXPIRY_BUCKET_MS`]).
    expiry: BTreeMap<EventTime, Vec<(EventTime, SpanKey)>>,
    correctable: HashMap<SpanKey, Correctable, KeyHash>,
    correctable_until: BTreeSet<(EventTime, SpanKey)>,
    counters: PairingCounters,
}

fn is_caller(kind: SpanKind) -> bool {
    matches!(kind, SpanKind::Client | SpanKind::Producer)
}

fn is_callee(kind: SpanKind) -> bool {
    matches!(kind, SpanKind::Server | SpanKind::Consumer)
}

fn key_of(span: &Span) -> SpanKey {
    (xxh3_64(span.tenant.as_bytes()), span.trace_id, span.span_id)
}

/// The namespace of a service URN (`urn:k8s:svc:<ns>/<name>`), else `default`.
fn namespace_of(urn: &str) -> &str {
    urn.strip_prefix("urn:k8s:svc:").and_then(|rest| rest.split_once('/')).map_or("default", |(ns, _)| ns)
}

/// The node an unpaired client span calls, by its attributes.
pub fn virtual_node(caller_service: &str, kind: SpanKind, peer: Option<&Peer>) -> (String, ConnectionType) {
    let peer = peer.cloned().unwrap_or_default();
    if let Some(system) = &peer.db_system {
        let name = peer.db_name.as_deref().unwrap_or(system);
        return (format!("urn:db:{system}/{name}"), ConnectionType::Database);
    }
    if let Some(system) = &peer.messaging_system {
        let dest = peer.messaging_destination.as_deref().unwrap_or(system);
        return (format!("urn:queue:{system}/{dest}"), ConnectionType::MessagingSystem);
    }
    if let Some(service) = &peer.peer_service {
        return (format!("urn:k8s:svc:{}/{service}", namespace_of(caller_service)), ConnectionType::VirtualNode);
    }
    if let Some(host) = &peer.server_address {
        return (format!("urn:ext:{host}"), ConnectionType::VirtualNode);
    }
    let kind = if kind == SpanKind::Producer { ConnectionType::MessagingSystem } else { ConnectionType::VirtualNode };
    ("urn:ext:unknown".to_owned(), kind)
}

/// The node that called a root server/consumer span.
pub fn virtual_caller(server: &Span, naming: CallerNaming) -> (String, ConnectionType) {
    let peer = server.peer.as_deref();
    if server.kind == SpanKind::Consumer
        && let Some(system) = peer.and_then(|p| p.messaging_system.as_ref())
    {
        let dest = peer.and_then(|p| p.messaging_destination.as_deref()).unwrap_or(system);
        return (format!("urn:queue:{system}/{dest}"), ConnectionType::MessagingSystem);
    }
    if naming == CallerNaming::Peer
        && let Some(service) = peer.and_then(|p| p.peer_service.as_ref())
    {
        return (format!("urn:k8s:svc:{}/{service}", namespace_of(&server.service)), ConnectionType::VirtualNode);
    }
    ("urn:ext:user".to_owned(), ConnectionType::VirtualNode)
}

fn pair_call(client: &Span, server: &Span) -> Call {
    let connection_type = if client.kind == SpanKind::Producer || server.kind == SpanKind::Consumer {
        ConnectionType::MessagingSystem
    } else {
        ConnectionType::Direct
    };
    Call {
        tenant: client.tenant.clone(),
        src: client.service.clone(),
        dst: server.service.clone(),
        connection_type,
        ts: client.ts,
        latency_ms: client.duration_ms,
        server_ms: Some(server.duration_ms),
        error: client.error || server.error,
        weight: client.weight,
        diff: 1,
        origin: client.origin,
        span_ids: (client.trace_id, client.span_id),
    }
}

/// A call whose caller is `src` and whose only span is the server span.
fn server_call(src: String, connection_type: ConnectionType, server: &Span) -> Call {
    Call {
        tenant: server.tenant.clone(),
        src,
        dst: server.service.clone(),
        connection_type,
        ts: server.ts,
        latency_ms: server.duration_ms,
        server_ms: Some(server.duration_ms),
        error: server.error,
        weight: server.weight,
        diff: 1,
        origin: server.origin,
        span_ids: (server.trace_id, server.span_id),
    }
}

impl Pairer {
    pub fn new(cfg: PairingConfig) -> Self {
        Self {
            cfg,
            watermark: None,
            held: HashMap::default(),
            children: HashMap::default(),
            expiry: BTreeMap::new(),
            correctable: HashMap::default(),
            correctable_until: BTreeSet::new(),
            counters: PairingCounters::default(),
        }
    }

    pub fn counters(&self) -> PairingCounters {
        PairingCounters { waiting: self.held.len() as u64, correctable: self.correctable.len() as u64, ..self.counters }
    }

    fn call_watermark(&self) -> Option<EventTime> {
        self.watermark.map(|wm| shift(wm, self.cfg.wait_ms))
    }

    /// Matches one epoch's spans against each other and the held state.
    pub fn arrive(&mut self, spans: Vec<Span>, out: &mut Vec<PairEvent>) {
        let size = self.cfg.window_ms;
        let call_wm = self.call_watermark();
        let mut arrived: Vec<SpanKey> = Vec::with_capacity(spans.len());
        // 1. Admit: late spans out, duplicates ignored, the rest held.
        for span in spans {
            let start = window_start(span.ts, size);
            if window_is_final(start, size, call_wm) {
                self.counters.late += 1;
                out.push(PairEvent::Late(DeadLetter {
                    kind: "late".to_string(),
                    reason: format!(
                        "late span: it ended at {}, in call window [{}, {}), which is final (watermark {} minus the pairing wait)",
                        fmt_ms(span.ts),
                        fmt_ms(start),
                        fmt_ms(start + size),
                        self.watermark.map_or_else(String::new, fmt_ms)
                    ),
                    origin: span.origin,
                    payload: serde_json::to_vec(&span).unwrap_or_default(),
                }));
                continue;
            }
            let key = key_of(&span);
            if self.held.contains_key(&key) || self.correctable.contains_key(&key) {
                self.counters.duplicates += 1;
                continue;
            }
            let due = span.ts.saturating_add(self.cfg.wait_ms);
            self.expiry.entry(due.div_euclid(EXPIRY_BUCKET_MS)).or_default().push((due, key));
            self.held.insert(key, Held { span, resolved: false });
            arrived.push(key);
        }
        // 2. Match: each arrival as a child (with its parent) and as a parent (with waiting
        //    children). Every pair is made exactly once: by whichever of the two arrived last.
        let mut let_go: Vec<SpanKey> = Vec::new();
        for key in &arrived {
            let (kind, parent, is_root) = {
                let held = &self.held[key];
                (held.span.kind, held.span.parent_span_id, held.span.parent_span_id.is_none())
            };
            if is_callee(kind) {
                if is_root {
                    let server = &self.held[key].span;
                    let (src, ct) = virtual_caller(server, self.cfg.caller);
                    out.push(PairEvent::Call(server_call(src, ct, server)));
                    self.counters.root_callers += 1;
                    self.held.get_mut(key).expect("held").resolved = true;
                } else if let Some(parent) = parent {
                    let parent_key = (key.0, key.1, parent);
                    if !self.match_pair(parent_key, *key, out, &mut let_go) {
                        self.children.entry(parent_key).or_default().push(key.2);
                    }
                }
            }
            if let Some(children) = self.children.remove(key) {
                let mut still_waiting = Vec::new();
                for child in children {
                    let child_key = (key.0, key.1, child);
                    if !self.match_pair(*key, child_key, out, &mut let_go) {
                        still_waiting.push(child);
                    }
                }
                if !still_waiting.is_empty() {
                    self.children.insert(*key, still_waiting);
                }
            }
        }
        // 3. Paired CLIENT spans leave (producers stay for fan-out until their wait passes).
        for key in let_go {
            if self.held.get(&key).is_some_and(|h| h.span.kind == SpanKind::Client) {
                self.held.remove(&key);
            }
        }
    }

    /// Tries to make the call between a parent (held or correctable) and a held child server
    /// span; true when the child's caller is now known.
    fn match_pair(&mut self, parent: SpanKey, child: SpanKey, out: &mut Vec<PairEvent>, let_go: &mut Vec<SpanKey>) -> bool {
        let Some(server) = self.held.get(&child).map(|h| &h.span) else { return false };
        if !is_callee(server.kind) {
            return false;
        }
        if let Some(parent_held) = self.held.get(&parent) {
            let p = &parent_held.span;
            if is_caller(p.kind) {
                out.push(PairEvent::Call(pair_call(p, server)));
                self.counters.paired += 1;
                let_go.push(parent);
            } else if p.kind == SpanKind::Server {
                if p.service != server.service {
                    let call = server_call(p.service.clone(), ConnectionType::Direct, server);
                    out.push(PairEvent::Call(call));
                    self.counters.server_to_server += 1;
                }
            } else {
                return false;
            }
            if let Some(h) = self.held.get_mut(&parent)
                && is_caller(h.span.kind)
            {
                h.resolved = true;
            }
            self.held.get_mut(&child).expect("held").resolved = true;
            return true;
        }
        if let Some(fixed) = self.correctable.get_mut(&parent) {
            let server = &self.held[&child].span;
            if !fixed.retracted {
                out.push(PairEvent::Call(fixed.call.negated()));
                self.counters.corrected += 1;
            }
            let connection_type = if fixed.kind == SpanKind::Producer || server.kind == SpanKind::Consumer {
                ConnectionType::MessagingSystem
            } else {
                ConnectionType::Direct
            };
            out.push(PairEvent::Call(Call {
                dst: server.service.clone(),
                connection_type,
                server_ms: Some(server.duration_ms),
                error: fixed.client_error || server.error,
                diff: 1,
                ..fixed.call.clone()
            }));
            self.counters.paired += 1;
            if fixed.kind == SpanKind::Producer {
                fixed.retracted = true;
            } else {
                self.correctable.remove(&parent);
            }
            self.held.get_mut(&child).expect("held").resolved = true;
            return true;
        }
        false
    }

    /// Applies a new engine watermark: spans whose wait has passed expire (unpaired clients make
    /// their virtual edge), and correctable records whose window is final leave.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<PairEvent>) {
        let watermark = self.watermark.map_or(watermark, |w| w.max(watermark));
        self.watermark = Some(watermark);
        // Due keys in (due, key) order: whole seconds that have passed, then the due part of the
        // first second still open.
        let mut due_keys: Vec<(EventTime, SpanKey)> = Vec::new();
        while let Some(mut first) = self.expiry.first_entry() {
            let second = *first.key();
            if second.saturating_mul(EXPIRY_BUCKET_MS).saturating_add(EXPIRY_BUCKET_MS - 1) <= watermark {
                due_keys.append(first.get_mut());
                first.remove();
                continue;
            }
            if second.saturating_mul(EXPIRY_BUCKET_MS) <= watermark {
                first.get_mut().retain(|&(due, key)| {
                    if due <= watermark {
                        due_keys.push((due, key));
                        false
                    } else {
                        true
                    }
                });
                if first.get().is_empty() {
                    first.remove();
                }
            }
            break;
        }
        due_keys.sort_unstable();
        for (_, key) in due_keys {
            let Some(Held { span, resolved }) = self.held.remove(&key) else { continue };
            if is_caller(span.kind) {
                if resolved {
                    continue;
                }
                let (dst, connection_type) = virtual_node(&span.service, span.kind, span.peer.as_deref());
                let span_ids = (span.trace_id, span.span_id);
                let call = Call {
                    tenant: span.tenant,
                    src: span.service,
                    dst,
                    connection_type,
                    ts: span.ts,
                    latency_ms: span.duration_ms,
                    server_ms: None,
                    error: span.error,
                    weight: span.weight,
                    diff: 1,
                    origin: span.origin,
                    span_ids,
                };
                out.push(PairEvent::Call(call.clone()));
                self.counters.virtual_edges += 1;
                let size = self.cfg.window_ms;
                self.correctable_until.insert((window_start(call.ts, size) + size, key));
                self.correctable.insert(key, Correctable { call, kind: span.kind, client_error: span.error, retracted: false });
            } else if !resolved {
                self.counters.expired_unpaired += 1;
                if let Some(parent) = span.parent_span_id {
                    let parent_key = (key.0, key.1, parent);
                    if let Some(waiting) = self.children.get_mut(&parent_key) {
                        waiting.retain(|c| *c != key.2);
                        if waiting.is_empty() {
                            self.children.remove(&parent_key);
                        }
                    }
                }
            }
        }
        let call_wm = shift(watermark, self.cfg.wait_ms);
        while let Some(&(end, key)) = self.correctable_until.first() {
            if end > call_wm {
                break;
            }
            self.correctable_until.pop_first();
            self.correctable.remove(&key);
        }
    }
}

/// Runs pairing on `spans` (exchanged by trace id) with the engine's watermark stream.
pub fn pairing<'scope>(
    cfg: PairingConfig,
    spans: StreamVec<'scope, u64, Span>,
    watermarks: StreamVec<'scope, u64, EventTime>,
) -> StreamVec<'scope, u64, PairEvent> {
    let route = |s: &Span| xxh3_64(&s.trace_id);
    let mut pairer = Pairer::new(cfg);
    epoch_by_epoch("pairing", spans, watermarks, route, move |spans, watermark, out| {
        pairer.arrive(spans, out);
        if let Some(wm) = watermark {
            pairer.advance(wm, out);
        }
        out.push(PairEvent::Counters(pairer.counters()));
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;

    const T0: EventTime = 1_800_000_000_000; // 2027-01-15T08:00:00Z, a 5-minute boundary
    const TRACE: [u8; 16] = [7; 16];

    fn id(n: u8) -> [u8; 8] {
        [0, 0, 0, 0, 0, 0, 0, n]
    }

    fn span(service: &str, n: u8, parent: Option<u8>, kind: SpanKind, ts: EventTime) -> Span {
        Span {
            tenant: "default".into(),
            service: format!("urn:k8s:svc:shop/{service}"),
            trace_id: TRACE,
            span_id: id(n),
            parent_span_id: parent.map(id),
            kind,
            ts,
            duration_ms: f64::from(n) * 10.0,
            error: false,
            weight: 1.0,
            peer: None,
            origin: Origin { partition: 0, offset: u64::from(n) },
        }
    }

    fn with_peer(mut s: Span, f: impl FnOnce(&mut Peer)) -> Span {
        let mut peer = Peer::default();
        f(&mut peer);
        s.peer = Some(Box::new(peer));
        s
    }

    /// `(src, dst, type, diff)` of the calls among `events`.
    fn calls(events: &[PairEvent]) -> Vec<(String, String, ConnectionType, i32)> {
        let mut out: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                PairEvent::Call(c) => Some((c.src.clone(), c.dst.clone(), c.connection_type, c.diff)),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    fn svc(name: &str) -> String {
        format!("urn:k8s:svc:shop/{name}")
    }

    fn pairer() -> Pairer {
        Pairer::new(PairingConfig::default())
    }

    #[test]
    fn client_and_child_server_make_one_call_in_any_arrival_order() {
        let client = span("frontend", 1, None, SpanKind::Client, T0 + 100);
        let server = span("cart", 2, Some(1), SpanKind::Server, T0 + 90);
        for order in [vec![client.clone(), server.clone()], vec![server.clone(), client.clone()]] {
            // Same epoch.
            let (mut p, mut out) = (pairer(), Vec::new());
            p.arrive(order.clone(), &mut out);
            assert_eq!(calls(&out), vec![(svc("frontend"), svc("cart"), ConnectionType::Direct, 1)]);
            // Separate epochs.
            let (mut p, mut out) = (pairer(), Vec::new());
            p.arrive(vec![order[0].clone()], &mut out);
            assert!(calls(&out).is_empty());
            p.arrive(vec![order[1].clone()], &mut out);
            assert_eq!(calls(&out), vec![(svc("frontend"), svc("cart"), ConnectionType::Direct, 1)]);
        }
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![client, server], &mut out);
        let PairEvent::Call(call) = &out[0] else { panic!("{out:?}") };
        assert_eq!((call.ts, call.latency_ms, call.server_ms), (T0 + 100, 10.0, Some(20.0)), "client time and latency, server latency kept");
        // Nothing is left over once the wait has passed: no virtual edge, no unpaired count.
        p.advance(T0 + 60_000, &mut out);
        assert_eq!(calls(&out).len(), 1);
        let c = p.counters();
        assert_eq!((c.paired, c.virtual_edges, c.expired_unpaired, c.waiting), (1, 0, 0, 0));
    }

    #[test]
    fn producer_and_consumer_are_a_messaging_call() {
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![span("orders", 1, None, SpanKind::Producer, T0), span("billing", 2, Some(1), SpanKind::Consumer, T0 + 500)], &mut out);
        assert_eq!(calls(&out), vec![(svc("orders"), svc("billing"), ConnectionType::MessagingSystem, 1)]);
    }

    #[test]
    fn unpaired_clients_become_virtual_nodes_once_their_wait_has_passed() {
        let cases: Vec<(Span, &str, ConnectionType)> = vec![
            (
                with_peer(span("cart", 1, None, SpanKind::Client, T0), |p| {
                    p.db_system = Some("postgresql".into());
                    p.db_name = Some("carts".into());
                }),
                "urn:db:postgresql/carts",
                ConnectionType::Database,
            ),
            (
                with_peer(span("cart", 1, None, SpanKind::Client, T0), |p| p.db_system = Some("redis".into())),
                "urn:db:redis/redis",
                ConnectionType::Database,
            ),
            (
                with_peer(span("orders", 1, None, SpanKind::Producer, T0), |p| {
                    p.messaging_system = Some("kafka".into());
                    p.messaging_destination = Some("orders".into());
                }),
                "urn:queue:kafka/orders",
                ConnectionType::MessagingSystem,
            ),
            (
                with_peer(span("cart", 1, None, SpanKind::Client, T0), |p| p.peer_service = Some("pricing".into())),
                "urn:k8s:svc:shop/pricing",
                ConnectionType::VirtualNode,
            ),
            (
                with_peer(span("cart", 1, None, SpanKind::Client, T0), |p| p.server_address = Some("api.stripe.com".into())),
                "urn:ext:api.stripe.com",
                ConnectionType::VirtualNode,
            ),
            (span("cart", 1, None, SpanKind::Client, T0), "urn:ext:unknown", ConnectionType::VirtualNode),
        ];
        for (client, dst, ct) in cases {
            let src = client.service.clone();
            let (mut p, mut out) = (pairer(), Vec::new());
            p.arrive(vec![client], &mut out);
            p.advance(T0 + 9_999, &mut out);
            assert!(calls(&out).is_empty(), "{dst}: not before the wait");
            p.advance(T0 + 10_000, &mut out);
            assert_eq!(calls(&out), vec![(src, dst.to_owned(), ct, 1)]);
            assert_eq!(p.counters().virtual_edges, 1);
        }
    }

    #[test]
    fn a_late_server_span_replaces_the_virtual_edge() {
        let client = with_peer(span("cart", 1, None, SpanKind::Client, T0 + 1_000), |p| p.peer_service = Some("pricing".into()));
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![client], &mut out);
        p.advance(T0 + 20_000, &mut out);
        assert_eq!(calls(&out), vec![(svc("cart"), svc("pricing"), ConnectionType::VirtualNode, 1)]);
        out.clear();
        p.arrive(vec![span("pricing", 2, Some(1), SpanKind::Server, T0 + 900)], &mut out);
        assert_eq!(
            calls(&out),
            vec![(svc("cart"), svc("pricing"), ConnectionType::Direct, 1), (svc("cart"), svc("pricing"), ConnectionType::VirtualNode, -1)]
        );
        let c = p.counters();
        assert_eq!((c.corrected, c.paired, c.correctable), (1, 1, 0));
        // The correctable record leaves once its window is final under the call watermark.
        let mut p = pairer();
        p.arrive(vec![span("cart", 1, None, SpanKind::Client, T0 + 1_000)], &mut out);
        p.advance(T0 + 20_000, &mut out);
        assert_eq!(p.counters().correctable, 1);
        p.advance(T0 + 300_000 + 10_000, &mut out);
        assert_eq!((p.counters().correctable, p.counters().waiting), (0, 0));
    }

    #[test]
    fn root_server_spans_are_called_by_their_peer_or_by_user() {
        let root = span("frontend", 1, None, SpanKind::Server, T0);
        let named = with_peer(root.clone(), |p| p.peer_service = Some("mobile-app".into()));
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![root], &mut out);
        assert_eq!(calls(&out), vec![("urn:ext:user".into(), svc("frontend"), ConnectionType::VirtualNode, 1)], "no wait for a root");
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![named.clone()], &mut out);
        assert_eq!(calls(&out), vec![(svc("mobile-app"), svc("frontend"), ConnectionType::VirtualNode, 1)]);
        let (mut p, mut out) = (Pairer::new(PairingConfig { caller: CallerNaming::User, ..Default::default() }), Vec::new());
        p.arrive(vec![named], &mut out);
        assert_eq!(calls(&out), vec![("urn:ext:user".into(), svc("frontend"), ConnectionType::VirtualNode, 1)], "collector-compatible naming");
        let consumer = with_peer(span("billing", 1, None, SpanKind::Consumer, T0), |p| {
            p.messaging_system = Some("kafka".into());
            p.messaging_destination = Some("invoices".into());
        });
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![consumer], &mut out);
        assert_eq!(calls(&out), vec![("urn:queue:kafka/invoices".into(), svc("billing"), ConnectionType::MessagingSystem, 1)]);
    }

    #[test]
    fn a_server_span_under_a_server_span_of_another_service_is_an_edge() {
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![span("gateway", 1, None, SpanKind::Server, T0), span("cart", 2, Some(1), SpanKind::Server, T0)], &mut out);
        assert_eq!(
            calls(&out),
            vec![("urn:ext:user".into(), svc("gateway"), ConnectionType::VirtualNode, 1), (svc("gateway"), svc("cart"), ConnectionType::Direct, 1)]
        );
        // Same service: no edge (a nested server span is not a call).
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![span("cart", 1, Some(9), SpanKind::Server, T0), span("cart", 2, Some(1), SpanKind::Server, T0)], &mut out);
        assert!(calls(&out).is_empty());
        assert_eq!(p.counters().server_to_server, 0);
    }

    #[test]
    fn errors_on_either_side_and_the_callers_sampling_weight_count() {
        let mut client = span("frontend", 1, None, SpanKind::Client, T0);
        client.weight = 8.0;
        let mut server = span("cart", 2, Some(1), SpanKind::Server, T0);
        server.error = true;
        server.weight = 2.0;
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![client.clone(), server], &mut out);
        let PairEvent::Call(call) = &out[0] else { panic!() };
        assert!(call.error);
        assert_eq!(call.weight, 8.0);
        let mut err_client = client;
        err_client.error = true;
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![err_client, span("cart", 2, Some(1), SpanKind::Server, T0)], &mut out);
        let PairEvent::Call(call) = &out[0] else { panic!() };
        assert!(call.error);
    }

    #[test]
    fn unpaired_servers_expire_late_spans_are_dead_letters_duplicates_are_ignored() {
        let (mut p, mut out) = (pairer(), Vec::new());
        let orphan = span("cart", 2, Some(1), SpanKind::Server, T0);
        p.arrive(vec![orphan.clone(), orphan.clone()], &mut out);
        assert_eq!(p.counters().duplicates, 1);
        p.advance(T0 + 10_000, &mut out);
        assert!(calls(&out).is_empty());
        assert_eq!((p.counters().expired_unpaired, p.counters().waiting), (1, 0));
        // The window [T0, T0+5m) is final once the watermark minus the wait passes its end.
        p.advance(T0 + 310_000, &mut out);
        out.clear();
        p.arrive(vec![span("cart", 3, None, SpanKind::Client, T0 + 299_999)], &mut out);
        assert!(matches!(&out[..], [PairEvent::Late(d)] if d.kind == "late" && d.reason.contains("late span")), "{out:?}");
        assert_eq!(p.counters().late, 1);
    }

    #[test]
    fn a_producer_pairs_with_every_consumer() {
        let (mut p, mut out) = (pairer(), Vec::new());
        p.arrive(vec![span("orders", 1, None, SpanKind::Producer, T0)], &mut out);
        p.arrive(vec![span("billing", 2, Some(1), SpanKind::Consumer, T0)], &mut out);
        p.arrive(vec![span("mailer", 3, Some(1), SpanKind::Consumer, T0)], &mut out);
        assert_eq!(
            calls(&out),
            vec![(svc("orders"), svc("billing"), ConnectionType::MessagingSystem, 1), (svc("orders"), svc("mailer"), ConnectionType::MessagingSystem, 1)]
        );
    }
}
