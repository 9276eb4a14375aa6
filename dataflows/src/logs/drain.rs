//! Drain-style template mining, one [`Miner`] per tenant.
//!
//! A message is masked ([`super::mask`]), cut into tokens, and routed through a prefix tree as
//! in Drain (He et al., ICWS 2017): the first layer groups messages by token count, the next
//! `depth - 3` layers by their leading tokens (a token with a digit, or one that would exceed
//! `max_children`, goes to the `<*>` child), and the leaf holds the candidate clusters. The
//! message joins the most similar candidate if the share of positions where the template and
//! the message agree reaches `sim_threshold`; the template then generalises (positions that
//! differ become `<*>`). Otherwise the message starts a new cluster.
//!
//! Where this differs from Drain and Drain3, and why:
//! - **Masked positions count as agreement.** Drain3 counts a template `<*>` as "not similar"
//!   even when the message has a masked `<*>` in the same place, so a message made mostly of
//!   variables never reaches the threshold against its own template and a new cluster is made
//!   for every occurrence. Here a masked value in the message agrees with a `<*>` in the
//!   template; a concrete token against a template `<*>` is neutral, as in Drain.
//! - **Stable ids.** A cluster's id is the xxh3 hash of the tenant and the masked tokens of the
//!   message that created it, kept when the template generalises: the same input in the same
//!   order gives the same ids in any run, and a library restored from [`ClusterRecord`]s keeps
//!   them. (Drain3 numbers clusters 1, 2, 3 ... in arrival order.) In the rare case that the id
//!   is held by a live cluster whose template no longer accepts its own first message, the id is
//!   re-hashed until free, deterministically.
//! - **Deterministic choices.** Ties between equally similar candidates go to the one with more
//!   `<*>` (as in Drain), then to the lower id, not to insertion order; eviction picks the
//!   cluster with the oldest `last_seen` (event time), ties by id. Both survive a
//!   snapshot/restore, so a restored miner continues exactly like the one that was saved.
//! - **Bounded state.** At `max_clusters` the least recently used cluster is evicted and tree
//!   nodes no cluster uses any more are freed; tokens are compared by 64-bit hash, so there is no
//!   vocabulary that grows with uptime; lines longer than `max_line_bytes` are cut at a
//!   character boundary.
//!
//! Speed: no allocation per message once the scratch buffers have grown (a new cluster
//! allocates its template), tokens compared as `u64`, and a cache from a message's masked token
//! sequence to the cluster it went to, which skips the tree walk and the similarity scan for a
//! sequence seen before as long as its leaf has not changed since.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

use super::header::Program;
use super::mask::{self, MaskConfig, MaskedLine, Masker};
use super::WILDCARD;

/// Miner parameters; the defaults are the ones evaluated on Loghub (see `benches/README.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Depth of the prefix tree counting the root, the token-count layer and the leaf, as in
    /// Drain: `depth - 3` leading tokens route a message. Default 4 (one routing token, as in
    /// Drain): with two, messages that differ in their second word (`user bob ...`, `user eve
    /// ...`) could never share a cluster.
    pub depth: usize,
    /// Share of token positions that must agree for a message to join a cluster, in (0, 1].
    /// Default 0.75: masking has already turned most variables into agreeing `<*>`, so what
    /// is left to disagree is mostly the words that tell messages apart (Drain, without
    /// masking, uses 0.4 to 0.6).
    pub sim_threshold: f64,
    /// Children per tree node; beyond it, new tokens share the `<*>` child. Default 100.
    pub max_children: usize,
    /// Live clusters per miner (per tenant); creating one more evicts the least recently used.
    /// Default 10,000.
    pub max_clusters: usize,
    /// Longer messages are cut (at a character boundary) before masking. Default 8 KiB.
    pub max_line_bytes: usize,
    /// What masking replaces before clustering.
    pub mask: MaskConfig,
}

fn default_depth() -> usize {
    4
}
fn default_sim_threshold() -> f64 {
    0.75
}
fn default_max_children() -> usize {
    100
}
fn default_max_clusters() -> usize {
    10_000
}
fn default_max_line_bytes() -> usize {
    8 * 1024
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            depth: default_depth(),
            sim_threshold: default_sim_threshold(),
            max_children: default_max_children(),
            max_clusters: default_max_clusters(),
            max_line_bytes: default_max_line_bytes(),
            mask: MaskConfig::default(),
        }
    }
}

impl MinerConfig {
    /// Checks the configuration before anything runs; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.depth < 3 {
            return Err(format!("miner.depth: {} is too small; the tree needs at least 3 levels (root, token count, leaf)", self.depth));
        }
        if !(self.sim_threshold > 0.0 && self.sim_threshold <= 1.0) {
            return Err(format!("miner.sim_threshold: {} is not in (0, 1]", self.sim_threshold));
        }
        if self.max_children < 2 {
            return Err(format!("miner.max_children: {} is too small; at least 2 (one token and the `<*>` child)", self.max_children));
        }
        if self.max_clusters == 0 {
            return Err("miner.max_clusters: must be at least 1".into());
        }
        if self.max_line_bytes < 16 {
            return Err(format!("miner.max_line_bytes: {} is too small; at least 16", self.max_line_bytes));
        }
        self.mask.validate().map_err(|e| format!("miner.{e}"))
    }
}

/// What happened to the cluster a message went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The message started a new cluster.
    Created,
    /// The message joined a cluster and generalised its template.
    TemplateChanged,
    /// The message joined a cluster whose template already covered it.
    Unchanged,
}

/// The outcome of [`Miner::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// The cluster's fingerprint id.
    pub id: u64,
    pub change: Change,
    /// A cluster evicted to make room for this one (only with [`Change::Created`]).
    pub evicted: Option<u64>,
}

impl Match {
    /// Whether the cluster's pattern row changed (new, or new template).
    pub fn pattern_changed(&self) -> bool {
        self.change != Change::Unchanged
    }
}

/// Counters of one miner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MinerStats {
    /// Messages added.
    pub lines: u64,
    pub clusters_created: u64,
    /// Template changes of existing clusters.
    pub generalisations: u64,
    /// Clusters evicted at `max_clusters`.
    pub evictions: u64,
    /// Messages cut at `max_line_bytes`.
    pub truncations: u64,
}

/// A cluster as persisted: what [`Miner::snapshot`] returns and [`Miner::restore`] takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRecord {
    pub id: u64,
    /// Template tokens; `<*>` is the wildcard.
    pub template: Vec<String>,
    /// Messages that joined the cluster.
    pub size: u64,
    /// Event time (ms) of the earliest and latest message.
    pub first_seen: i64,
    pub last_seen: i64,
    /// The message that created the cluster (after truncation).
    pub sample: String,
}

/// One cluster: a template and its statistics.
#[derive(Clone, Debug)]
pub struct Cluster {
    id: u64,
    /// Token hashes (`token_hash`); the hash of `<*>` for a wildcard.
    tokens: Vec<u64>,
    texts: Vec<Box<str>>,
    /// Number of `<*>` in `tokens`.
    wildcards: u32,
    size: u64,
    first_seen: i64,
    last_seen: i64,
    sample: String,
    /// The tree leaf holding the cluster.
    leaf: u32,
}

impl Cluster {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The template: tokens joined by single spaces.
    pub fn template(&self) -> String {
        self.texts.join(" ")
    }

    pub fn template_tokens(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.texts.iter().map(|t| &**t)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn first_seen(&self) -> i64 {
        self.first_seen
    }

    pub fn last_seen(&self) -> i64 {
        self.last_seen
    }

    /// The message that created the cluster.
    pub fn sample(&self) -> &str {
        &self.sample
    }

    pub fn record(&self) -> ClusterRecord {
        ClusterRecord {
            id: self.id,
            template: self.texts.iter().map(|t| t.to_string()).collect(),
            size: self.size,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            sample: self.sample.clone(),
        }
    }
}

/// Hash of a token's text (see [`mask::token_hash`]).
fn token_hash(text: &str) -> u64 {
    mask::token_hash(text.as_bytes())
}

/// FxHash-style mixing for keys that are already hashes (or small integers).
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

type MixMap<K, V> = HashMap<K, V, BuildHasherDefault<Mix>>;

/// A prefix-tree node.
#[derive(Clone, Debug, Default)]
struct Node {
    parent: u32,
    key: u64,
    children: u32,
    /// Clusters living under the node (the path count, to free unused nodes).
    refs: u32,
    /// Bumped whenever the leaf's clusters or their templates change (invalidates the cache).
    version: u32,
    /// Cluster slots, when the node is a leaf.
    clusters: Vec<u32>,
}

/// Per-message buffers, reused.
#[derive(Debug, Default)]
struct Scratch {
    masked: MaskedLine,
    digits: Vec<bool>,
}

impl Scratch {
    /// Hashes the masked tokens, and notes which of the first `prefix` (the routing tokens)
    /// hold a digit; returns the hash of the whole sequence.
    fn hash(&mut self, prefix: usize) -> u64 {
        self.digits.clear();
        for t in self.masked.tokens().take(prefix) {
            self.digits.push(t.bytes().any(|b| b.is_ascii_digit()));
        }
        // The token hashes are uniform already; a multiply-rotate fold mixes them.
        let hashes = self.masked.hashes();
        let seq = hashes.iter().fold(hashes.len() as u64, |acc, &h| (acc ^ h).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29));
        seq ^ (seq >> 32)
    }
}

/// Where a token sequence went last time, valid while its leaf's version is unchanged.
#[derive(Clone, Copy, Debug)]
struct Cached {
    /// [`Miner::tree_version`] when recorded: a new or freed node can reroute the sequence.
    tree: u64,
    leaf: u32,
    version: u32,
    /// The cluster's slot.
    slot: u32,
}

/// Entries of the sequence cache before it is cleared (bounds its memory).
const CACHE_CAP: usize = 1 << 16;

/// The template miner of one tenant.
#[derive(Debug)]
pub struct Miner {
    tenant: String,
    cfg: MinerConfig,
    masker: Masker,
    slots: Vec<Option<Cluster>>,
    free_slots: Vec<u32>,
    by_id: MixMap<u64, u32>,
    nodes: Vec<Node>,
    free_nodes: Vec<u32>,
    children: MixMap<(u32, u64), u32>,
    /// `(last_seen, id)` of every live cluster, possibly stale (refreshed lazily on eviction).
    lru: BinaryHeap<Reverse<(i64, u64)>>,
    cache: MixMap<u64, Cached>,
    /// Bumped whenever a tree node is created or freed.
    tree_version: u64,
    live: usize,
    stats: MinerStats,
    scratch: Scratch,
    /// The hash of `<*>`.
    wild: u64,
}

thread_local! {
    static MATCH_SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Miner {
    /// An empty miner for `tenant`. The configuration should have been validated
    /// ([`MinerConfig::validate`]); out-of-range values are clamped.
    pub fn new(tenant: impl Into<String>, cfg: MinerConfig) -> Miner {
        let mut cfg = cfg;
        cfg.depth = cfg.depth.max(3);
        cfg.max_children = cfg.max_children.max(2);
        cfg.max_clusters = cfg.max_clusters.max(1);
        cfg.max_line_bytes = cfg.max_line_bytes.max(16);
        let masker = Masker::new(cfg.mask.clone());
        Miner {
            tenant: tenant.into(),
            cfg,
            masker,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: MixMap::default(),
            nodes: vec![Node::default()],
            free_nodes: Vec::new(),
            children: MixMap::default(),
            lru: BinaryHeap::new(),
            cache: MixMap::default(),
            tree_version: 0,
            live: 0,
            stats: MinerStats::default(),
            scratch: Scratch::default(),
            wild: token_hash(WILDCARD),
        }
    }

    /// A miner continuing from persisted clusters (the output of [`Miner::snapshot`]). Clusters
    /// keep their ids; records beyond `max_clusters` are evicted (least recently seen first).
    pub fn restore(tenant: impl Into<String>, cfg: MinerConfig, records: Vec<ClusterRecord>) -> Miner {
        let mut miner = Miner::new(tenant, cfg);
        let mut records = records;
        records.sort_by_key(|r| (r.first_seen, r.id));
        let mut scratch = std::mem::take(&mut miner.scratch);
        for r in records {
            if miner.by_id.contains_key(&r.id) {
                continue;
            }
            // The tree path is the one the creating message took: re-mask the sample.
            miner.masker.mask_into(&r.sample, &mut scratch.masked);
            scratch.hash(usize::MAX);
            let mut path = scratch.masked.hashes().to_vec();
            if path.len() != r.template.len() {
                path = r.template.iter().map(|t| token_hash(t)).collect();
                scratch.digits = r.template.iter().map(|t| t.bytes().any(|b| b.is_ascii_digit())).collect();
            }
            let cluster = Cluster {
                id: r.id,
                tokens: r.template.iter().map(|t| token_hash(t)).collect(),
                wildcards: r.template.iter().filter(|t| *t == WILDCARD).count() as u32,
                texts: r.template.into_iter().map(String::into_boxed_str).collect(),
                size: r.size,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                sample: r.sample,
                leaf: 0,
            };
            miner.insert(cluster, &path, &scratch.digits);
        }
        miner.scratch = scratch;
        miner.cache.clear();
        miner
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// Live clusters.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The live clusters, in no particular order ([`Miner::snapshot`] is sorted by id).
    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> + '_ {
        self.slots.iter().flatten()
    }

    pub fn cluster(&self, id: u64) -> Option<&Cluster> {
        self.by_id.get(&id).and_then(|&s| self.slots[s as usize].as_ref())
    }

    /// Every live cluster as a record, sorted by id: what to persist.
    pub fn snapshot(&self) -> Vec<ClusterRecord> {
        let mut records: Vec<ClusterRecord> = self.clusters().map(Cluster::record).collect();
        records.sort_by_key(|r| r.id);
        records
    }

    /// Learns from one message (the log body, without its header) at event time `ts` (ms).
    pub fn add(&mut self, message: &str, ts: i64) -> Match {
        self.stats.lines += 1;
        let message = self.truncate(message);
        let mut scratch = std::mem::take(&mut self.scratch);
        self.masker.mask_into(message, &mut scratch.masked);
        let seq = scratch.hash(self.cfg.depth - 3);
        let tokens = scratch.masked.hashes();
        let found = self.find(seq, tokens);
        let joined = match found {
            Some((slot, true)) => self.touch(slot, ts),
            Some((slot, false)) => self.join(slot, tokens, ts),
            None => None,
        };
        let result = match joined {
            Some(m) => m,
            None => {
                let evicted = (self.live >= self.cfg.max_clusters).then(|| self.evict()).flatten();
                let id = self.fresh_id(scratch.masked.as_str());
                let cluster = Cluster {
                    id,
                    tokens: tokens.to_vec(),
                    texts: scratch.masked.tokens().map(Box::from).collect(),
                    wildcards: tokens.iter().filter(|&&h| h == self.wild).count() as u32,
                    size: 1,
                    first_seen: ts,
                    last_seen: ts,
                    sample: message.to_string(),
                    leaf: 0,
                };
                self.insert(cluster, tokens, &scratch.digits);
                self.stats.clusters_created += 1;
                Match { id, change: Change::Created, evicted }
            }
        };
        self.scratch = scratch;
        result
    }

    /// The cluster `message` belongs to, without learning: the cluster [`Miner::add`] would put
    /// it in, or `None` where `add` would create a new one.
    pub fn match_only(&self, message: &str) -> Option<u64> {
        let message = truncate_at(message, self.cfg.max_line_bytes);
        MATCH_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            self.masker.mask_into(message, &mut scratch.masked);
            let tokens = scratch.masked.hashes();
            let leaf = self.search(tokens)?;
            let slot = self.best(leaf, tokens)?;
            self.slots[slot as usize].as_ref().map(|c| c.id)
        })
    }

    /// The values behind each `<*>` of the cluster's template in `message`.
    pub fn parameters(&self, id: u64, message: &str) -> Option<Vec<String>> {
        extract_parameters(&self.cluster(id)?.template(), message)
    }

    fn truncate<'m>(&mut self, message: &'m str) -> &'m str {
        if message.len() > self.cfg.max_line_bytes {
            self.stats.truncations += 1;
        }
        truncate_at(message, self.cfg.max_line_bytes)
    }

    /// The cluster a hashed message joins, through the cache when its leaf is unchanged, and
    /// whether it came from the cache (then the template is known to cover the message).
    fn find(&mut self, seq: u64, tokens: &[u64]) -> Option<(u32, bool)> {
        if let Some(c) = self.cache.get(&seq)
            && c.tree == self.tree_version
            && self.nodes[c.leaf as usize].version == c.version
        {
            // Guard against a collision of sequence hashes: the template must cover the
            // message, as it did when the entry was made.
            let wild = self.wild;
            let covers = self.slots[c.slot as usize].as_ref().is_some_and(|cl| cl.tokens.len() == tokens.len() && cl.tokens.iter().zip(tokens).all(|(&t, &m)| t == m || t == wild));
            if covers {
                return Some((c.slot, true));
            }
        }
        let leaf = self.search(tokens)?;
        let slot = self.best(leaf, tokens)?;
        if self.cache.len() >= CACHE_CAP {
            self.cache.clear();
        }
        // A join that generalises the template bumps the leaf's version, so the entry only
        // stays valid while the template covers the message as it is.
        self.cache.insert(seq, Cached { tree: self.tree_version, leaf, version: self.nodes[leaf as usize].version, slot });
        Some((slot, false))
    }

    /// Drain's tree search: the leaf for a message, if its path exists.
    fn search(&self, tokens: &[u64]) -> Option<u32> {
        let mut node = *self.children.get(&(0, tokens.len() as u64))?;
        for &t in &tokens[..self.prefix_len(tokens.len())] {
            node = match self.children.get(&(node, t)) {
                Some(&n) => n,
                None => *self.children.get(&(node, self.wild))?,
            };
        }
        Some(node)
    }

    /// Routing tokens for a message of `n` tokens (Drain: `depth - 3`, at most `n`).
    fn prefix_len(&self, n: usize) -> usize {
        (self.cfg.depth - 3).min(n)
    }

    /// The most similar cluster of a leaf, if it reaches the threshold.
    fn best(&self, leaf: u32, tokens: &[u64]) -> Option<u32> {
        let n = tokens.len();
        let mut best: Option<(usize, u32, u64, u32)> = None;
        for &slot in &self.nodes[leaf as usize].clusters {
            let Some(c) = self.slots[slot as usize].as_ref() else { continue };
            let mut same = 0;
            for (&t, &m) in c.tokens.iter().zip(tokens) {
                same += usize::from(t == m);
            }
            let key = (same, c.wildcards, c.id);
            let better = match best {
                None => true,
                Some((s, w, id, _)) => (key.0, key.1) > (s, w) || ((key.0, key.1) == (s, w) && key.2 < id),
            };
            if better {
                best = Some((same, c.wildcards, c.id, slot));
            }
        }
        let (same, _, _, slot) = best?;
        // Positions where the template has `<*>` and the message a concrete token are neutral:
        // neither agreement nor disagreement, as in Drain. A masked `<*>` in the message agrees.
        let sim = if n == 0 { 1.0 } else { same as f64 / n as f64 };
        (sim >= self.cfg.sim_threshold).then_some(slot)
    }

    /// Adds a message to a cluster whose template covers it (`None` if the slot is empty,
    /// which the callers rule out: then a new cluster is made).
    fn touch(&mut self, slot: u32, ts: i64) -> Option<Match> {
        let c = self.slots[slot as usize].as_mut()?;
        c.size += 1;
        c.first_seen = c.first_seen.min(ts);
        c.last_seen = c.last_seen.max(ts);
        Some(Match { id: c.id, change: Change::Unchanged, evicted: None })
    }

    /// Adds a message to a cluster, generalising its template.
    fn join(&mut self, slot: u32, tokens: &[u64], ts: i64) -> Option<Match> {
        let wild = self.wild;
        let c = self.slots[slot as usize].as_mut()?;
        c.size += 1;
        c.first_seen = c.first_seen.min(ts);
        if ts > c.last_seen {
            c.last_seen = ts;
        }
        let mut changed = false;
        for (i, &m) in tokens.iter().enumerate() {
            if c.tokens[i] != m && c.tokens[i] != wild {
                c.tokens[i] = wild;
                c.texts[i] = WILDCARD.into();
                c.wildcards += 1;
                changed = true;
            }
        }
        let id = c.id;
        let leaf = c.leaf;
        if changed {
            self.stats.generalisations += 1;
            self.nodes[leaf as usize].version = self.nodes[leaf as usize].version.wrapping_add(1);
        }
        Some(Match { id, change: if changed { Change::TemplateChanged } else { Change::Unchanged }, evicted: None })
    }

    /// An id for a new cluster created from the masked message `masked`: the hash of tenant and
    /// tokens, re-hashed while a live cluster holds it.
    fn fresh_id(&self, masked: &str) -> u64 {
        let mut h = Xxh3::new();
        h.update(self.tenant.as_bytes());
        h.update(&[0xff]);
        h.update(masked.as_bytes());
        let mut id = h.digest();
        while self.by_id.contains_key(&id) {
            id = xxh3_64_with_seed(&id.to_le_bytes(), 1);
        }
        id
    }

    /// Puts a cluster into a slot and into the tree along the path of `path` (the tokens of the
    /// message that created it), as Drain's `addSeqToPrefixTree` does.
    fn insert(&mut self, mut cluster: Cluster, path: &[u64], digits: &[bool]) {
        if self.live >= self.cfg.max_clusters {
            self.evict();
        }
        let wild = self.wild;
        let mut node = self.child_or_new(0, path.len() as u64);
        let mut route = vec![node];
        for i in 0..self.prefix_len(path.len()) {
            let t = path[i];
            node = if let Some(&n) = self.children.get(&(node, t)) {
                n
            } else if digits[i] {
                self.child_or_new(node, wild)
            } else {
                let count = self.nodes[node as usize].children as usize;
                let has_wild = self.children.contains_key(&(node, wild));
                if (has_wild && count < self.cfg.max_children) || (!has_wild && count + 1 < self.cfg.max_children) {
                    self.child_or_new(node, t)
                } else {
                    self.child_or_new(node, wild)
                }
            };
            route.push(node);
        }
        for &n in &route {
            self.nodes[n as usize].refs += 1;
        }
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        cluster.leaf = node;
        let leaf = &mut self.nodes[node as usize];
        leaf.clusters.push(slot);
        leaf.version = leaf.version.wrapping_add(1);
        self.lru.push(Reverse((cluster.last_seen, cluster.id)));
        self.by_id.insert(cluster.id, slot);
        self.slots[slot as usize] = Some(cluster);
        self.live += 1;
    }

    fn child_or_new(&mut self, parent: u32, key: u64) -> u32 {
        if let Some(&n) = self.children.get(&(parent, key)) {
            return n;
        }
        let node = Node { parent, key, ..Node::default() };
        let n = match self.free_nodes.pop() {
            Some(n) => {
                self.nodes[n as usize] = Node { version: self.nodes[n as usize].version.wrapping_add(1), ..node };
                n
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.children.insert((parent, key), n);
        self.nodes[parent as usize].children += 1;
        self.tree_version += 1;
        n
    }

    /// Evicts the cluster seen least recently (oldest `last_seen`, then lowest id).
    fn evict(&mut self) -> Option<u64> {
        while let Some(Reverse((seen, id))) = self.lru.pop() {
            let Some(&slot) = self.by_id.get(&id) else { continue };
            let current = self.slots[slot as usize].as_ref().map_or(seen, |c| c.last_seen);
            if current != seen {
                self.lru.push(Reverse((current, id)));
                continue;
            }
            self.remove(slot);
            self.stats.evictions += 1;
            return Some(id);
        }
        None
    }

    /// Removes a cluster and frees the tree nodes nothing uses any more.
    fn remove(&mut self, slot: u32) {
        let Some(c) = self.slots[slot as usize].take() else { return };
        self.by_id.remove(&c.id);
        self.free_slots.push(slot);
        self.live -= 1;
        let leaf = &mut self.nodes[c.leaf as usize];
        leaf.clusters.retain(|&s| s != slot);
        leaf.version = leaf.version.wrapping_add(1);
        let mut node = c.leaf;
        while node != 0 {
            let n = &mut self.nodes[node as usize];
            n.refs -= 1;
            let (parent, key, unused) = (n.parent, n.key, n.refs == 0);
            if unused {
                self.children.remove(&(parent, key));
                self.nodes[parent as usize].children -= 1;
                self.nodes[node as usize].clusters = Vec::new();
                self.free_nodes.push(node);
                self.tree_version += 1;
            }
            node = parent;
        }
    }
}

/// `message` cut to at most `max` bytes at a character boundary.
fn truncate_at(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// The values behind each `<*>` of `template` in `message`, in order; `None` when the message
/// does not fit the template.
///
/// The template is matched against the raw message as Loghub's `get_parameter_list` does: its
/// literal text must appear as written, a space matches any run of whitespace, and a `<*>` is a
/// lazy `.*?`. So a `<*>` that stands for a whole masked token yields the token's original text
/// (`<*>` against `blk_-123` is `blk_-123`), a `<*>` inside a token yields the masked part only
/// (`blk_<*>` against `blk_-123` is `-123`), and a `<*>` masking a quoted string with spaces
/// yields it whole (`"<*>"` against `"no such file"` is `no such file`).
pub fn extract_parameters(template: &str, message: &str) -> Option<Vec<String>> {
    let (program, captures) = Program::template(template);
    let message = message.trim();
    let mut slots = vec![usize::MAX; 2 * captures];
    if !program.matches(message, &mut slots) {
        return None;
    }
    Some((0..captures).map(|k| message.get(slots[2 * k]..slots[2 * k + 1]).unwrap_or("").to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miner() -> Miner {
        Miner::new("t1", MinerConfig::default())
    }

    fn template(m: &Miner, id: u64) -> String {
        m.cluster(id).unwrap().template()
    }

    #[test]
    fn lines_differing_in_variables_share_a_fingerprint() {
        let mut m = miner();
        let a = m.add("PacketResponder 1 for block blk_38865049064139660 terminating", 1);
        let b = m.add("PacketResponder 0 for block blk_-6952295868487656571 terminating", 2);
        let c = m.add("Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6", 3);
        assert_eq!(a.change, Change::Created);
        assert_eq!(b, Match { id: a.id, change: Change::Unchanged, evicted: None });
        assert_ne!(c.id, a.id);
        assert_eq!(template(&m, a.id), "PacketResponder <*> for block blk_<*> terminating");
        // Unmasked variables generalise the template; the id stays.
        let d = m.add("Invalid user webmaster from 173.234.31.186", 4);
        let e = m.add("Invalid user test9 from 52.80.34.196", 5);
        assert_eq!((e.id, e.change), (d.id, Change::TemplateChanged));
        assert_eq!(template(&m, d.id), "Invalid user <*> from <*>");
        let s = m.stats();
        assert_eq!((s.lines, s.clusters_created, s.generalisations), (5, 3, 1));
        let cl = m.cluster(a.id).unwrap();
        assert_eq!((cl.size(), cl.first_seen(), cl.last_seen()), (2, 1, 2));
        assert_eq!(cl.sample(), "PacketResponder 1 for block blk_38865049064139660 terminating");
    }

    #[test]
    fn ids_are_stable_across_runs_and_tenants_differ() {
        let lines = ["a 1 b", "connection from 10.0.0.1 closed", "a 2 b", "user bob logged in", "user eve logged in"];
        let run = |tenant: &str| {
            let mut m = Miner::new(tenant, MinerConfig::default());
            lines.iter().enumerate().map(|(i, l)| m.add(l, i as i64).id).collect::<Vec<_>>()
        };
        assert_eq!(run("t1"), run("t1"));
        assert_ne!(run("t1"), run("t2"));
        let ids = run("t1");
        assert_eq!(ids[0], ids[2]);
        assert_eq!(ids[3], ids[4]);
    }

    #[test]
    fn restore_of_snapshot_gives_the_same_ids() {
        let first: Vec<String> = (0..200).map(|i| format!("worker {} finished job {} in {}ms status={}", i % 7, i, i * 3, ["ok", "failed"][i % 2])).collect();
        let second: Vec<String> = (0..200)
            .map(|i| match i % 4 {
                0 => format!("worker {} finished job {} in {}ms status=ok", i % 5, i, i),
                1 => format!("cache miss for key user:{} after {} tries", i, i % 3),
                2 => format!("user u{} logged in from 10.0.{}.{}", i % 13, i % 200, i % 250),
                _ => format!("shutting down queue q{} with {} pending", i % 9, i),
            })
            .collect();
        let mut a = miner();
        for (i, l) in first.iter().enumerate() {
            a.add(l, i as i64);
        }
        let records = a.snapshot();
        let json = serde_json::to_string(&records).unwrap();
        let restored: Vec<ClusterRecord> = serde_json::from_str(&json).unwrap();
        let mut b = Miner::restore("t1", MinerConfig::default(), restored);
        assert_eq!(b.snapshot(), records);
        for (i, l) in second.iter().enumerate() {
            let ts = 1000 + i as i64;
            assert_eq!(a.add(l, ts), b.add(l, ts), "line {i}: {l}");
            assert_eq!(a.match_only(l), b.match_only(l));
        }
        assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn eviction_under_the_cap_is_lru() {
        let cfg = MinerConfig { max_clusters: 3, ..MinerConfig::default() };
        let mut m = Miner::new("t", cfg);
        let a = m.add("alpha started", 10).id;
        let b = m.add("beta stopped now", 20).id;
        let c = m.add("gamma is a longer line", 30).id;
        // `a` is used again, so `b` is now the least recently used.
        assert_eq!(m.add("alpha started", 40).id, a);
        let d = m.add("delta with five tokens here", 50);
        assert_eq!(d.change, Change::Created);
        assert_eq!(d.evicted, Some(b));
        assert_eq!(m.len(), 3);
        assert!(m.cluster(b).is_none() && m.cluster(a).is_some() && m.cluster(c).is_some());
        assert_eq!(m.stats().evictions, 1);
        // The evicted cluster comes back under the same id.
        let b2 = m.add("beta stopped now", 60);
        assert_eq!((b2.id, b2.change, b2.evicted), (b, Change::Created, Some(c)));
        assert_eq!(m.stats().evictions, 2);
        // Freed tree nodes are reused and lookups still work.
        assert_eq!(m.match_only("alpha started"), Some(a));
        assert_eq!(m.match_only("gamma is a longer line"), None);
    }

    #[test]
    fn long_lines_are_truncated_at_a_char_boundary() {
        let cfg = MinerConfig { max_line_bytes: 20, ..MinerConfig::default() };
        let mut m = Miner::new("t", cfg);
        let long = "ééééééééééééééééééééé tail"; // 2-byte chars: 20 bytes is a boundary, 21 not
        let r = m.add(long, 1);
        assert_eq!(m.stats().truncations, 1);
        assert_eq!(m.cluster(r.id).unwrap().sample(), "éééééééééé");
        let odd = "aéééééééééééééé";
        let r = m.add(odd, 2);
        assert_eq!(m.cluster(r.id).unwrap().sample(), "aééééééééé");
        assert_eq!(m.stats().truncations, 2);
        m.add("short", 3);
        assert_eq!(m.stats().truncations, 2);
    }

    #[test]
    fn parameters() {
        assert_eq!(extract_parameters("PacketResponder <*> for block blk_<*> terminating", "PacketResponder 1 for block blk_-38 terminating"), Some(vec!["1".into(), "-38".into()]));
        assert_eq!(extract_parameters("Invalid user <*> from <*>", "Invalid user  web master from 1.2.3.4"), Some(vec!["web master".into(), "1.2.3.4".into()]));
        assert_eq!(extract_parameters(r#"open "<*>" failed: <*>"#, r#"open "/tmp/a b" failed: EACCES"#), Some(vec!["/tmp/a b".into(), "EACCES".into()]));
        assert_eq!(extract_parameters("from <*>:<*> to <*>", "from 10.0.0.1:80 to blk_-1"), Some(vec!["10.0.0.1".into(), "80".into(), "blk_-1".into()]));
        assert_eq!(extract_parameters("no wildcards", "no wildcards"), Some(vec![]));
        assert_eq!(extract_parameters("user <*> logged in", "user bob logged out"), None);
        let mut m = miner();
        let id = m.add("user=alice uid=0 took 10ms", 1).id;
        assert_eq!(template(&m, id), "user=<*> uid=<*> took <*>");
        assert_eq!(m.parameters(id, "user=bob uid=1000 took 2.5s"), Some(vec!["bob".into(), "1000".into(), "2.5s".into()]));
    }

    #[test]
    fn match_only_does_not_learn() {
        let mut m = miner();
        let id = m.add("disk /dev/sda1 is 91% full", 1).id;
        assert_eq!(m.match_only("disk /dev/sdb2 is 95% full"), Some(id));
        assert_eq!(m.match_only("something else entirely"), None);
        assert_eq!(m.stats().lines, 1);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn masked_lines_join_their_own_cluster() {
        // All variables: Drain3 would make a new cluster per line.
        let mut m = miner();
        let a = m.add("10.0.0.1 42 0x1f 2015-07-29", 1).id;
        let b = m.add("10.0.0.2 7 0xff 2016-01-01", 2).id;
        assert_eq!(a, b);
        let e1 = m.add("", 3).id;
        assert_eq!(m.add("   ", 4).id, e1);
    }

    #[test]
    fn config_validation_and_serde() {
        assert!(MinerConfig::default().validate().is_ok());
        assert!(MinerConfig { depth: 2, ..MinerConfig::default() }.validate().unwrap_err().contains("miner.depth"));
        assert!(MinerConfig { sim_threshold: 0.0, ..MinerConfig::default() }.validate().unwrap_err().contains("sim_threshold"));
        let cfg: MinerConfig = serde_json::from_str(r#"{"depth": 5, "mask": {"quoted": false}}"#).unwrap();
        assert_eq!(cfg.depth, 5);
        assert!(!cfg.mask.quoted);
        assert!(serde_json::from_str::<MinerConfig>(r#"{"dpeth": 5}"#).is_err());
    }
}
