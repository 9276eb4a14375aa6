//! Masking: the variables of a log message become the wildcard `<*>` before clustering.
//!
//! One hand-written pass over the bytes of a message, no regex: the message is cut into words
//! at whitespace (a quoted string or a JSON value that starts a word, or follows `=`/`:`, is one
//! word even when it holds spaces), each word is classified, and the result is written as tokens
//! into a reusable [`MaskedLine`] (no allocation per token once its buffers have grown).
//!
//! What a word can be, in the order it is tried (each class can be switched off in
//! [`MaskConfig`]):
//!
//! | class | example | becomes |
//! |---|---|---|
//! | JSON object | `{"user":"bob","n":3}` | `{"user":<*>,` `"n":<*>}` (keys kept, one token per member) |
//! | quoted string | `"no such file"`, `'safety'` | `"<*>"`, `'<*>'` |
//! | URL | `hdfs://host:9000/a/b` | `hdfs://<*>` (scheme kept) |
//! | path | `/etc/hosts`, `./run.sh`, `C:\tmp` | `<*>` |
//! | email | `ops@example.com` | `<*>` |
//! | UUID | `123e4567-e89b-12d3-a456-426614174000` | `<*>` |
//! | IPv4, port | `10.0.0.1`, `10.0.0.1:8080`, `/10.0.0.1:8080` | `<*>`, `<*>:<*>`, `/<*>:<*>` |
//! | IPv6 | `fe80::1`, `::1` | `<*>` |
//! | hostname, port | `db-1.prod.example.com`, `db-1.example.com:5432` (last label a common TLD) | `<*>`, `<*>:<*>` |
//! | number, size, percentage | `42`, `-7`, `1.5e-3`, `5KB`, `3.5GiB`, `99%` | `<*>` |
//! | duration | `10ms`, `2.5s`, `1h30m` | `<*>` |
//! | timestamp, date, version | `2015-07-29`, `17:41:44,747`, `2026-11-20T10:00:00Z`, `1.2.3`, `v1.2.3` | `<*>` |
//! | hex | `0x7fff`, `7bd8a1f`, `deadbeef01` | `<*>` |
//! | key=value | `user=alice`, `uid=0`, `msg="x 1"` | `user=<*>`, `uid=<*>`, `msg="x <*>"` (values of [`MaskConfig::keep_value_keys`] are masked word by word instead) |
//! | anything else | `blk_-123`, `attempt_1445_0020_m_000001_0`, `web-7d4b9c-x8kq2`, `jetty-6.1.26` | `blk_<*>`, `attempt_<*>`, `web-<*>`, `jetty-<*>` (masked sub-tokens: digit runs, hex runs, random-looking ids; runs joined by `.`, `_` or `-` merge) |
//!
//! Words that only look like variables stay: `ssh2`, `log4j`, `x86`, `R02`, `IPv4`, `HTTP/1.1`'s
//! `HTTP/` part, `don't`, Java class names (`org.apache.hadoop.Foo`), file names (`app.py`).
//! Punctuation around a word (`(`, `[`, `"`, trailing `,`, `.`, `:` ...) is kept around the mask:
//! `[10.0.0.1]` becomes `[<*>]`, `(TID 12).` becomes `(TID <*>).`.

use serde::{Deserialize, Serialize};

use super::WILDCARD;

/// What masking replaces; every class is on by default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Numbers: integers, floats, signed, with exponents, with size units (`5KB`, `3.5GiB`,
    /// `200bytes`) or `%`; digit runs inside words (`blk_-123` -> `blk_<*>`).
    pub numbers: bool,
    /// Durations: numbers with a time unit (`10ms`, `2.5s`, `3min`) and Go-style `1h30m`.
    pub durations: bool,
    /// Dates, times, timestamps and versions: digit groups joined by `- : . / , _ +`, with an
    /// optional `T`, `Z` or leading `v` (`2015-07-29`, `17:41:44,747`, `1.2.3`, `v1.2.3`).
    pub timestamps: bool,
    /// Hex: `0x...`, and runs of 6 or more hex digits holding both digits and letters.
    pub hex: bool,
    /// UUIDs (8-4-4-4-12 hex digits).
    pub uuids: bool,
    /// IPv4 addresses (port masked separately: `<*>:<*>`) and IPv6 addresses.
    pub ips: bool,
    /// Hostnames of two or more labels ending in a common top-level domain (`com`, `net`,
    /// `org`, `io`, `local`, `internal`, ...). Java class names and file names do not match.
    pub hostnames: bool,
    /// Absolute and relative paths: `/a/b`, `./a`, `../a`, `~/a`, `C:\a`.
    pub paths: bool,
    /// URLs: `scheme://...` (the scheme is kept).
    pub urls: bool,
    /// Email addresses.
    pub emails: bool,
    /// Strings in double or single quotes at the start of a word, spaces included.
    pub quoted: bool,
    /// Values of `key=value` pairs (the key is kept: `user=<*>`). Several pairs in one word
    /// (`a=1,b=2`) are masked one by one; empty values stay empty (`ruser=`).
    pub key_values: bool,
    /// Keys whose values are not masked wholesale (as `key=value` or JSON members) but word by
    /// word like the rest of the message, because they carry the message itself or a small set
    /// of values worth telling apart. Compared case-insensitively.
    pub keep_value_keys: Vec<String>,
    /// JSON objects and arrays: keys kept, values masked; an array is masked whole.
    pub json: bool,
    /// Random-looking identifiers inside words: letter/digit mixes that switch between letters
    /// and digits three times or more (`x8kq2`, `a1b2c3`); pod-name suffixes, request ids.
    pub ids: bool,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            numbers: true,
            durations: true,
            timestamps: true,
            hex: true,
            uuids: true,
            ips: true,
            hostnames: true,
            paths: true,
            urls: true,
            emails: true,
            quoted: true,
            key_values: true,
            keep_value_keys: default_keep_value_keys(),
            json: true,
            ids: true,
        }
    }
}

/// `msg`, `message`, `level`, `lvl`, `severity`, `caller`, `logger`, `component`, `event`,
/// `error`, `err`: logfmt and JSON logs put the message itself, or a low-cardinality label,
/// under these keys; masking them wholesale would fold every message into one pattern.
pub fn default_keep_value_keys() -> Vec<String> {
    ["msg", "message", "level", "lvl", "severity", "caller", "logger", "component", "event", "error", "err"].iter().map(|s| s.to_string()).collect()
}

impl MaskConfig {
    /// Checks the configuration before anything runs.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = self.keep_value_keys.iter().find(|k| k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace() || b == b'=')) {
            return Err(format!("mask.keep_value_keys: `{k}` is not a key (empty, or holds whitespace or `=`)"));
        }
        Ok(())
    }
}

/// A masked message: its tokens, in a buffer that is reused from message to message.
#[derive(Clone, Debug, Default)]
pub struct MaskedLine {
    /// The tokens, separated by single spaces.
    text: String,
    /// `(start, end)` of each token in `text`.
    spans: Vec<(u32, u32)>,
    /// [`token_hash`] of each token, computed as the token is finished.
    hashes: Vec<u64>,
    /// Start of the token being written.
    open: Option<u32>,
    /// The token being written holds a wildcard.
    open_wild: bool,
    /// The last finished token ends with a wildcard.
    last_wild: bool,
}

impl MaskedLine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.hashes.clear();
        self.open = None;
        self.open_wild = false;
        self.last_wild = false;
    }

    /// The masked message: its tokens joined by single spaces.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Token `i`.
    pub fn token(&self, i: usize) -> &str {
        let (s, e) = self.spans[i];
        &self.text[s as usize..e as usize]
    }

    pub fn tokens(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans.iter().map(|&(s, e)| &self.text[s as usize..e as usize])
    }

    /// [`token_hash`] of each token.
    pub(super) fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// Appends literal text to the current token.
    #[inline]
    fn lit(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.start();
        self.text.push_str(s);
    }

    /// Appends the wildcard to the current token (never two in a row).
    fn wild(&mut self) {
        if self.open.is_some_and(|o| self.text.len() >= o as usize + WILDCARD.len() && self.text.ends_with(WILDCARD)) {
            return;
        }
        self.start();
        self.text.push_str(WILDCARD);
        self.open_wild = true;
    }

    fn start(&mut self) {
        if self.open.is_none() {
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            self.open = Some(self.text.len() as u32);
        }
    }

    /// Ends the current token. A token equal to the one before it that holds a wildcard and
    /// literal text (`blk_<*> blk_<*>`, `<*>, <*>,`: a list of variable length) is dropped, so
    /// that lists of any length give the same tokens. (`<*>: <*>:` stays: a value and a label.)
    #[inline]
    fn brk(&mut self) {
        let Some(start) = self.open.take() else { return };
        let end = self.text.len() as u32;
        self.last_wild = false;
        if std::mem::take(&mut self.open_wild) && self.repeated(start) {
            return;
        }
        self.spans.push((start, end));
        self.hashes.push(token_hash(&self.text.as_bytes()[start as usize..end as usize]));
    }

    /// For a token holding a wildcard: drops it if it repeats the one before.
    #[cold]
    fn repeated(&mut self, start: u32) -> bool {
        let end = self.text.len();
        self.last_wild = self.text.ends_with(WILDCARD);
        let Some(&(ps, pe)) = self.spans.last() else { return false };
        let (prev, cur) = (&self.text[ps as usize..pe as usize], &self.text[start as usize..end]);
        // A list item has literal text of its own (`blk_<*>`) or ends with a list separator
        // (`<*>,`); `<*>:` is a value and a label (`1.2.3.4: 11: Bye`), not a list.
        let item = || cur.bytes().any(|b| b.is_ascii_alphanumeric()) || cur.ends_with(',') || cur.ends_with(';');
        if prev == cur && cur.len() > WILDCARD.len() && item() {
            // Also drop the separating space.
            self.text.truncate(start as usize - 1);
            return true;
        }
        false
    }

    /// Continues the last finished token (which holds a wildcard: see `last_wild`).
    fn reopen(&mut self) {
        if let Some((s, _)) = self.spans.pop() {
            self.hashes.pop();
            self.open = Some(s);
            self.open_wild = true;
            self.last_wild = false;
        }
    }
}

/// Hash of a token's text: the miner compares tokens by it. wyhash-style (overlapping loads
/// for short tokens, a 128-bit multiply to mix); not seeded, since persisted templates are
/// re-hashed on restore and must hash the same.
pub(super) fn token_hash(t: &[u8]) -> u64 {
    const K0: u64 = 0xa076_1d64_78bd_642f;
    const K1: u64 = 0xe703_7ed1_a0b4_28db;
    const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
    let r4 = |i: usize| t.get(i..i + 4).and_then(|w| <[u8; 4]>::try_from(w).ok()).map_or(0, |w| u64::from(u32::from_le_bytes(w)));
    let r8 = |i: usize| t.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map_or(0, u64::from_le_bytes);
    let n = t.len();
    let mut seed = K0;
    let (a, b) = if n <= 16 {
        if n >= 4 {
            let q = (n >> 3) << 2;
            ((r4(0) << 32) | r4(q), (r4(n - 4) << 32) | r4(n - 4 - q))
        } else if n > 0 {
            ((u64::from(t[0]) << 16) | (u64::from(t[n >> 1]) << 8) | u64::from(t[n - 1]), 0)
        } else {
            (0, 0)
        }
    } else {
        let mut i = 0;
        while i + 16 < n {
            seed = mum(r8(i) ^ K1, r8(i + 8) ^ seed);
            i += 16;
        }
        (r8(n - 16), r8(n - 8))
    };
    mum(K1 ^ n as u64, mum(a ^ K1, b ^ seed ^ K2))
}

/// 64x64 -> 128-bit multiply, folded.
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Masks messages according to a [`MaskConfig`]; cheap to share, no state between messages.
#[derive(Clone, Debug)]
pub struct Masker {
    cfg: MaskConfig,
    /// `keep_value_keys`, lowercased.
    keep: Vec<String>,
}

impl Default for Masker {
    fn default() -> Self {
        Masker::new(MaskConfig::default())
    }
}

/// Byte classes, for the one-pass summary of a word ([`classes`]).
const DIGIT: u16 = 1;
const DOT: u16 = 1 << 1;
const COLON: u16 = 1 << 2;
const SLASH: u16 = 1 << 3;
const AT: u16 = 1 << 4;
const EQ: u16 = 1 << 5;
/// `"` and `'`.
const QUOTE: u16 = 1 << 6;
/// `{` and `[` (JSON openers).
const BRACE: u16 = 1 << 7;
const DASH: u16 = 1 << 8;
const WS: u16 = 1 << 9;
/// Letters, digits, non-ASCII bytes (see [`is_word`]).
const WORD: u16 = 1 << 10;

static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_digit() {
            t[i] = DIGIT | WORD;
        } else if b.is_ascii_alphabetic() || b >= 0x80 {
            t[i] = WORD;
        }
        i += 1;
    }
    t[b'.' as usize] = DOT;
    t[b':' as usize] = COLON;
    t[b'/' as usize] = SLASH;
    t[b'\\' as usize] = SLASH;
    t[b'@' as usize] = AT;
    t[b'=' as usize] = EQ;
    t[b'"' as usize] = QUOTE;
    t[b'\'' as usize] = QUOTE;
    t[b'{' as usize] = BRACE;
    t[b'[' as usize] = BRACE;
    t[b'-' as usize] = DASH;
    t[b' ' as usize] = WS;
    t[b'\t' as usize] = WS;
    t[b'\n' as usize] = WS;
    t[b'\r' as usize] = WS;
    t[0x0b] = WS;
    t[0x0c] = WS;
    t
};

/// Advances from `i` to the next whitespace, quote or brace (or `end`), adding the classes of
/// the bytes passed to `f`. A small loop of its own so that it stays in registers.
#[inline(never)]
fn scan_plain(b: &[u8], i: usize, end: usize, f: &mut u16) -> usize {
    let mut acc = 0u16;
    let mut n = 0;
    for &x in &b[i..end] {
        let c = CLASS[x as usize];
        if c & (WS | QUOTE | BRACE) != 0 {
            break;
        }
        acc |= c;
        n += 1;
    }
    *f |= acc;
    i + n
}

/// The run of word bytes (letters, digits, non-ASCII) from `i`: its end and its digit count.
fn word_run(b: &[u8], i: usize, z: usize) -> (usize, usize) {
    let mut digits = 0;
    let mut n = 0;
    for &x in &b[i..z] {
        let c = CLASS[x as usize];
        if c & WORD == 0 {
            break;
        }
        digits += usize::from(c & DIGIT != 0);
        n += 1;
    }
    (i + n, digits)
}

/// The union of the byte classes of `w`.
fn classes(w: &[u8]) -> u16 {
    w.iter().fold(0, |f, &b| f | CLASS[b as usize])
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Letters, digits and any non-ASCII byte (UTF-8 sequences never contain ASCII bytes, so
/// cutting at ASCII delimiters always cuts at character boundaries).
fn is_word(b: u8) -> bool {
    CLASS[b as usize] & WORD != 0
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Punctuation that may open a word and is kept in front of the mask.
fn is_opener(b: u8) -> bool {
    matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'' | b'`')
}

/// Punctuation that may close a word and is kept after the mask.
fn is_closer(b: u8) -> bool {
    matches!(b, b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b'`' | b',' | b';' | b':' | b'.' | b'!' | b'?')
}

impl Masker {
    pub fn new(cfg: MaskConfig) -> Masker {
        let keep = cfg.keep_value_keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        Masker { cfg, keep }
    }

    pub fn config(&self) -> &MaskConfig {
        &self.cfg
    }

    /// The masked message, tokens joined by single spaces (for tests and tools; the miner uses
    /// [`Masker::mask_into`]).
    pub fn mask(&self, message: &str) -> String {
        let mut out = MaskedLine::new();
        self.mask_into(message, &mut out);
        out.text
    }

    /// Masks `message` into `out` (cleared first).
    pub fn mask_into(&self, message: &str, out: &mut MaskedLine) {
        out.clear();
        self.range(message, 0, message.len(), out);
        out.brk();
    }

    /// Masks the words of `s[i..end]`, breaking tokens at whitespace.
    fn range(&self, s: &str, mut i: usize, end: usize, out: &mut MaskedLine) {
        let b = s.as_bytes();
        let mut first = true;
        while i < end {
            while i < end && CLASS[b[i] as usize] & WS != 0 {
                i += 1;
            }
            if i >= end {
                break;
            }
            // Words are tokens; the first joins what the caller has written (an opening quote).
            if !first {
                out.brk();
            }
            first = false;
            let start = i;
            // A unit after a masked number belongs to it: `16.0 KB,` is `<*>,`.
            if out.last_wild && b[i].is_ascii_alphabetic() {
                let mut u = i;
                while u < end && b[u].is_ascii_alphabetic() {
                    u += 1;
                }
                if u == end || is_ws(b[u]) || is_closer(b[u]) {
                    let mut z = u;
                    while z < end && !is_ws(b[z]) {
                        z += 1;
                    }
                    if b[u..z].iter().all(|&c| is_closer(c)) && self.unit_word(&b[i..u]) {
                        out.reopen();
                        out.lit(&s[u..z]);
                        i = z;
                        continue;
                    }
                }
            }
            // The word ends at whitespace, except inside a quoted string or a JSON value that
            // starts the word or a `key=` value. Its byte classes are collected on the way.
            let mut f = 0u16;
            let mut jumped = false;
            // The end of a quoted string or JSON value that opens the word.
            let mut lead = None;
            loop {
                i = scan_plain(b, i, end, &mut f);
                if i >= end || CLASS[b[i] as usize] & WS != 0 {
                    break;
                }
                // A quote or brace.
                if (i == start || matches!(b[i - 1], b'=' | b':'))
                    && let Some(e) = self.structured_end(b, i, end)
                {
                    if i == start {
                        lead = Some(e);
                    }
                    i = e;
                    jumped = true;
                    continue;
                }
                f |= CLASS[b[i] as usize];
                i += 1;
            }
            if jumped {
                // A quoted string or JSON value opening the word: masked here, with its extent
                // known, and the rest of the word after it.
                if let Some(e) = lead {
                    self.structured(s, start, e, false, out);
                    self.word(s, e, i, classes(&b[e..i]), out);
                    continue;
                }
                f = classes(&b[start..i]);
            }
            // Most words hold no digit and none of the punctuation a masked class needs (`::`
            // aside, for IPv6): they are literal.
            if f & (DIGIT | QUOTE | BRACE | EQ | AT | SLASH | DOT) == 0 && (f & COLON == 0 || !b[start..i].windows(2).any(|w| w == b"::")) {
                out.lit(&s[start..i]);
                continue;
            }
            self.word(s, start, i, f, out);
        }
    }

    /// Masks one word `s[a..z]` into the current token; `f` holds at least the [`classes`] of
    /// its bytes.
    fn word(&self, s: &str, a: usize, z: usize, f: u16, out: &mut MaskedLine) {
        if a >= z {
            return;
        }
        let b = s.as_bytes();
        // A quoted string or JSON value opening the word; what follows it is masked as the
        // rest of the word.
        if f & (QUOTE | BRACE) != 0
            && let Some(e) = self.structured_end(b, a, z)
        {
            self.structured(s, a, e, false, out);
            return self.word(s, e, z, classes(&b[e..z]), out);
        }
        // Openers and closers stay around the core.
        let mut ca = a;
        while ca < z && is_opener(b[ca]) {
            ca += 1;
        }
        if ca == z {
            out.lit(&s[a..z]);
            return;
        }
        // `key=value`: the value handles its own punctuation (it may be quoted).
        if f & EQ != 0 && self.cfg.key_values && key_end(b, ca, z).is_some() {
            out.lit(&s[a..ca]);
            self.key_value(s, ca, z, out);
            return;
        }
        // `key:"quoted value"`, `data:{...}`: a structured value after a colon.
        let structured = if f & COLON != 0 && f & (QUOTE | BRACE) != 0 { ca + 1..z } else { z..z };
        for p in structured {
            if b[p - 1] != b':' {
                continue;
            }
            if let Some(e) = self.structured_end(b, p, z) {
                out.lit(&s[a..ca]);
                self.subtokens(s, ca, p, out);
                self.structured(s, p, e, false, out);
                return self.word(s, e, z, classes(&b[e..z]), out);
            }
        }
        let mut cz = z;
        while cz > ca && is_closer(b[cz - 1]) {
            cz -= 1;
        }
        // `jk2_init()`: an opener right before the closers belongs to the word.
        if ca == cz {
            out.lit(&s[a..z]);
            return;
        }
        out.lit(&s[a..ca]);
        self.core(s, ca, cz, f, out);
        out.lit(&s[cz..z]);
    }

    /// The end of a quoted string or JSON value starting at `b[p]`, when masking takes those.
    fn structured_end(&self, b: &[u8], p: usize, z: usize) -> Option<usize> {
        match b[p] {
            b'"' | b'\'' if self.cfg.quoted => scan_quoted(b, p, z),
            b'{' | b'[' if self.cfg.json => json_value_end(b, p, z, 0),
            _ => None,
        }
    }

    /// A quoted string or JSON value `s[p..e]`: masked whole (quotes kept, JSON keys kept), or,
    /// when `keep`, a quoted string's words masked one by one.
    fn structured(&self, s: &str, p: usize, e: usize, keep: bool, out: &mut MaskedLine) {
        let b = s.as_bytes();
        match b[p] {
            b'"' | b'\'' => {
                let q = &s[p..p + 1];
                out.lit(q);
                if keep {
                    self.range(s, p + 1, e - 1, out);
                } else {
                    out.wild();
                }
                out.lit(q);
            }
            _ => self.json(s, p, e, out),
        }
    }

    /// Masks a word without its surrounding punctuation.
    ///
    /// `f` are the [`classes`] of the word the core was taken from: a superset of the core's,
    /// used to skip the checks that cannot apply (most words have no digit and no punctuation).
    fn core(&self, s: &str, a: usize, z: usize, f: u16, out: &mut MaskedLine) {
        let b = s.as_bytes();
        let c = &b[a..z];
        let cfg = &self.cfg;
        if f & COLON != 0
            && f & SLASH != 0
            && cfg.urls
            && let Some(k) = url_scheme(c)
        {
            out.lit(&s[a..a + k + 3]);
            out.wild();
            return;
        }
        if cfg.ips && f & DIGIT != 0 && f & DOT != 0 {
            // `/10.0.0.1:8080`: the slash stays, as Loghub's templates write it.
            let slash = usize::from(c[0] == b'/');
            if let Some(port) = ipv4_port(&c[slash..]) {
                out.lit(&s[a..a + slash]);
                out.wild();
                if port {
                    out.lit(":");
                    out.wild();
                }
                return;
            }
        }
        if cfg.paths && is_path(c) {
            out.wild();
            return;
        }
        // `host.example.com:8042`: host and port, like an IP and its port.
        if cfg.hostnames
            && f & DIGIT != 0
            && f & COLON != 0
            && f & DOT != 0
            && let Some(colon) = c.iter().rposition(|&b| b == b':')
            && colon + 1 < c.len()
            && c[colon + 1..].iter().all(u8::is_ascii_digit)
            && is_hostname(&c[..colon])
        {
            out.wild();
            out.lit(":");
            out.wild();
            return;
        }
        if f & DIGIT == 0 {
            // No digit: only a few classes can apply, and nothing inside the word is masked.
            let whole = (f & AT != 0 && cfg.emails && is_email(c))
                || (f & DOT != 0 && cfg.hostnames && is_hostname(c))
                || (f & COLON != 0 && cfg.ips && is_ipv6(c));
            if whole {
                out.wild();
            } else {
                out.lit(&s[a..z]);
            }
            return;
        }
        let kind = numeric_kind(c);
        // A timestamp the configuration keeps stays whole (not masked number by number).
        if !cfg.timestamps && kind == Some(Numeric::Timestamp) {
            out.lit(&s[a..z]);
            return;
        }
        let whole = self.numeric_masked(kind)
            || (f & AT != 0 && cfg.emails && is_email(c))
            || (f & DASH != 0 && cfg.uuids && is_uuid(c))
            || (f & DOT != 0 && cfg.hostnames && is_hostname(c))
            || (cfg.hex && is_hex_word(c))
            || (f & COLON != 0 && cfg.ips && is_ipv6(c));
        if whole {
            out.wild();
            return;
        }
        self.subtokens(s, a, z, out);
    }

    /// `key=value[,key=value...]`: masks the values, keeps the keys. False when `s[a..z]` does
    /// not start with a key.
    fn key_value(&self, s: &str, a: usize, z: usize, out: &mut MaskedLine) -> bool {
        let b = s.as_bytes();
        let Some(eq) = key_end(b, a, z) else { return false };
        out.lit(&s[a..=eq]);
        let v = eq + 1;
        let keep = self.keep.iter().any(|k| k.eq_ignore_ascii_case(&s[a..eq]));
        // A quoted or JSON value; what follows it is the rest of the word.
        if v < z
            && let Some(e) = self.structured_end(b, v, z)
        {
            if keep || b[v] == b'{' {
                self.structured(s, v, e, keep, out);
            } else {
                out.wild();
            }
            self.after_value(s, e, z, out);
            return true;
        }
        // A plain value runs to the next `,key=` / `;key=` / `&key=`, or to the end; trailing
        // punctuation stays.
        let mut i = v;
        while i < z {
            if matches!(b[i], b',' | b';' | b'&') && key_end(b, i + 1, z).is_some() {
                break;
            }
            i += 1;
        }
        let mut vz = i;
        while vz > v && is_closer(b[vz - 1]) {
            vz -= 1;
        }
        if vz > v {
            if keep {
                self.core(s, v, vz, classes(&s.as_bytes()[v..vz]), out);
            } else {
                out.wild();
            }
        }
        out.lit(&s[vz..i]);
        self.after_value(s, i, z, out);
        true
    }

    /// What follows a `key=value`'s value in the same word: another pair after `,`/`;`/`&`,
    /// or the rest of the word.
    fn after_value(&self, s: &str, i: usize, z: usize, out: &mut MaskedLine) {
        let b = s.as_bytes();
        if i >= z {
            return;
        }
        if matches!(b[i], b',' | b';' | b'&') && key_end(b, i + 1, z).is_some() {
            out.lit(&s[i..i + 1]);
            self.key_value(s, i + 1, z, out);
        } else {
            self.word(s, i, z, classes(&b[i..z]), out);
        }
    }

    /// Masks the variable runs inside a word: digit runs (with a sign after a delimiter), hex
    /// runs, random-looking ids; masked runs separated by one `.`, `_` or `-` merge.
    fn subtokens(&self, s: &str, a: usize, z: usize, out: &mut MaskedLine) {
        let b = s.as_bytes();
        let mut lit_from = a;
        // End of the last masked run, to merge `<*>.<*>` into `<*>`.
        let mut last_mask: Option<usize> = None;
        let mut i = a;
        while i < z {
            if CLASS[b[i] as usize] & WORD == 0 {
                i += 1;
                continue;
            }
            let start = i;
            let (end, digits) = word_run(b, i, z);
            i = end;
            if !self.variable_run(&b[start..i], digits) {
                // One letter between two masked runs is part of the id: `attempt_<*>_m_<*>`.
                let joined = |m: usize| start == m + 1 && matches!(b[m], b'.' | b'_' | b'-');
                if i - start == 1 && last_mask.is_some_and(joined) && i + 1 < z && matches!(b[i], b'.' | b'_' | b'-') {
                    let (j, digits) = word_run(b, i + 1, z);
                    if j > i + 1 && self.variable_run(&b[i + 1..j], digits) {
                        last_mask = Some(j);
                        lit_from = j;
                        i = j;
                    }
                }
                continue;
            }
            // A sign right before a number, itself after a delimiter or the word's start.
            let mut from = start;
            if from > a && matches!(b[from - 1], b'-' | b'+') && b[start].is_ascii_digit() && (from - 1 == a || !is_word(b[from - 2])) {
                from -= 1;
            }
            let merge = last_mask.is_some_and(|m| from == m + 1 && matches!(b[m], b'.' | b'_' | b'-'));
            if !merge {
                out.lit(&s[lit_from..from]);
                out.wild();
            }
            last_mask = Some(i);
            lit_from = i;
        }
        out.lit(&s[lit_from..z]);
    }

    /// Is this run of letters and digits (no delimiters) holding `digits` digits a variable?
    fn variable_run(&self, r: &[u8], digits: usize) -> bool {
        if digits == 0 {
            return false;
        }
        if digits == r.len() {
            return self.cfg.numbers;
        }
        // Mixed: whether all are hex digits, non-ASCII, letter/digit switches.
        let (mut hex, mut ascii, mut switches) = (true, true, 0usize);
        let mut prev_digit = r.first().is_some_and(u8::is_ascii_digit);
        for &b in r {
            let d = b.is_ascii_digit();
            hex &= b.is_ascii_hexdigit();
            ascii &= b < 0x80;
            switches += usize::from(d != prev_digit);
            prev_digit = d;
        }
        let cfg = &self.cfg;
        // Hex runs of 6 or more with letters and digits (`7bd8a1f`), `0x...`.
        if cfg.hex && ((hex && r.len() >= 6) || is_hex_word(r)) {
            return true;
        }
        if r[0].is_ascii_digit() && self.numeric_word(r) {
            return true;
        }
        // Letter/digit switches: `ssh2` 1, `log4j` 2, `x8kq2` 4.
        cfg.ids && ascii && switches >= 3
    }

    /// A unit written apart from its number (`16.0 KB`, `384 B`, `300 ms`); other single
    /// letters and `bytes` (a word as much as a unit) are not taken.
    fn unit_word(&self, u: &[u8]) -> bool {
        (u.len() >= 2 || u == b"B")
            && u != b"bytes"
            && match unit(u) {
                Some(Numeric::Duration) => self.cfg.durations,
                Some(_) => self.cfg.numbers,
                None => false,
            }
    }

    /// Is `c` a number, size, duration or timestamp that the configuration masks?
    fn numeric_word(&self, c: &[u8]) -> bool {
        self.numeric_masked(numeric_kind(c))
    }

    fn numeric_masked(&self, kind: Option<Numeric>) -> bool {
        let cfg = &self.cfg;
        match kind {
            Some(Numeric::Number | Numeric::Size) => cfg.numbers,
            Some(Numeric::Duration) => cfg.durations,
            Some(Numeric::Timestamp) => cfg.timestamps,
            None => false,
        }
    }

    /// A JSON value `s[a..e]` (already validated): an object keeps its keys, everything else is
    /// one wildcard.
    fn json(&self, s: &str, a: usize, e: usize, out: &mut MaskedLine) {
        let b = s.as_bytes();
        if b[a] != b'{' {
            out.wild();
            return;
        }
        out.lit("{");
        let mut i = skip_ws(b, a + 1, e);
        if b[i] == b'}' {
            out.lit("}");
            return;
        }
        loop {
            let ks = skip_ws(b, i, e);
            let ke = scan_quoted(b, ks, e).unwrap_or(e);
            out.lit(&s[ks..ke]);
            i = skip_ws(b, ke, e);
            // `:`
            out.lit(":");
            let vs = skip_ws(b, i + 1, e);
            let ve = json_value_end(b, vs, e, 0).unwrap_or(e);
            let key = &s[ks + 1..ke.saturating_sub(1).max(ks + 1)];
            if b[vs] == b'{' {
                self.json(s, vs, ve, out);
            } else if b[vs] == b'"' && self.keep.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                out.lit("\"");
                self.range(s, vs + 1, ve - 1, out);
                out.lit("\"");
            } else {
                out.wild();
            }
            i = skip_ws(b, ve, e);
            if i >= e {
                return;
            }
            if b[i] == b',' {
                out.lit(",");
                out.brk();
                i += 1;
            } else {
                out.lit("}");
                return;
            }
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// A quoted string starting at `b[i]` (a `"` or `'`): the index after its closing quote, when
/// the quote closes before `end` and is followed by whitespace, the end or punctuation.
fn scan_quoted(b: &[u8], i: usize, end: usize) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < end {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => {
                let after = j + 1;
                let boundary = after >= end || is_ws(b[after]) || matches!(b[after], b',' | b';' | b':' | b'.' | b')' | b']' | b'}' | b'!' | b'?');
                return boundary.then_some(after);
            }
            _ => j += 1,
        }
    }
    None
}

/// The end of the JSON value starting at `b[i]`, if it is one (strict JSON, depth-limited).
fn json_value_end(b: &[u8], i: usize, end: usize, depth: u32) -> Option<usize> {
    if i >= end || depth > 32 {
        return None;
    }
    match b[i] {
        b'{' | b'[' => {
            let close = if b[i] == b'{' { b'}' } else { b']' };
            let object = b[i] == b'{';
            let mut j = skip_ws(b, i + 1, end);
            if j < end && b[j] == close {
                return Some(j + 1);
            }
            loop {
                if object {
                    if j >= end || b[j] != b'"' {
                        return None;
                    }
                    j = json_string_end(b, j, end)?;
                    j = skip_ws(b, j, end);
                    if j >= end || b[j] != b':' {
                        return None;
                    }
                    j = skip_ws(b, j + 1, end);
                }
                j = json_value_end(b, j, end, depth + 1)?;
                j = skip_ws(b, j, end);
                if j >= end {
                    return None;
                }
                if b[j] == b',' {
                    j = skip_ws(b, j + 1, end);
                } else if b[j] == close {
                    return Some(j + 1);
                } else {
                    return None;
                }
            }
        }
        b'"' => json_string_end(b, i, end),
        b't' => b[i..end].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..end].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..end].starts_with(b"null").then_some(i + 4),
        b'-' | b'0'..=b'9' => {
            let mut j = i + usize::from(b[i] == b'-');
            let digits = j;
            while j < end && b[j].is_ascii_digit() {
                j += 1;
            }
            if j == digits {
                return None;
            }
            if j < end && b[j] == b'.' {
                j += 1;
                let f = j;
                while j < end && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j == f {
                    return None;
                }
            }
            if j < end && matches!(b[j], b'e' | b'E') {
                j += 1;
                if j < end && matches!(b[j], b'+' | b'-') {
                    j += 1;
                }
                let f = j;
                while j < end && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j == f {
                    return None;
                }
            }
            // A number must end where a JSON token can end.
            if j < end && !(is_ws(b[j]) || matches!(b[j], b',' | b']' | b'}')) {
                return None;
            }
            Some(j)
        }
        _ => None,
    }
}

fn json_string_end(b: &[u8], i: usize, end: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < end {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The position of `=` when `b[a..z]` starts with `key=` (`[A-Za-z_@$][A-Za-z0-9_.@$-]*`).
fn key_end(b: &[u8], a: usize, z: usize) -> Option<usize> {
    if a >= z || !(b[a].is_ascii_alphabetic() || matches!(b[a], b'_' | b'@' | b'$')) {
        return None;
    }
    let mut i = a + 1;
    while i < z && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'@' | b'$' | b'-')) {
        i += 1;
    }
    // `a==b` and `a=>b` are not assignments.
    (i < z && b[i] == b'=' && !(i + 1 < z && matches!(b[i + 1], b'=' | b'>'))).then_some(i)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Numeric {
    /// `42`, `-7`, `1.5e-3`.
    Number,
    /// `5KB`, `3.5GiB`, `99%`.
    Size,
    /// `10ms`, `1h30m`.
    Duration,
    /// Two or more digit groups (`2015-07-29`, `17:41:44,747`, `1.2.3`), or a `v` version.
    Timestamp,
}

/// Numbers, sizes, durations, timestamps, versions: digit groups joined by single separators,
/// with an optional sign, `v`, exponent, unit, `T` or `Z`.
fn numeric_kind(c: &[u8]) -> Option<Numeric> {
    let n = c.len();
    let mut i = 0;
    if i < n && matches!(c[i], b'+' | b'-') {
        i += 1;
    }
    let mut version = false;
    if i + 1 < n && matches!(c[i], b'v' | b'V') && c[i + 1].is_ascii_digit() {
        version = true;
        i += 1;
    }
    if i >= n || !c[i].is_ascii_digit() {
        return None;
    }
    let mut groups = 0;
    loop {
        while i < n && c[i].is_ascii_digit() {
            i += 1;
        }
        groups += 1;
        if i == n {
            break;
        }
        match c[i] {
            b'.' | b':' | b'-' | b'/' | b',' | b'_' | b'+' | b'T' if i + 1 < n && c[i + 1].is_ascii_digit() => i += 1,
            b'e' | b'E' if i + 1 < n && c[i + 1].is_ascii_digit() => i += 1,
            b'e' | b'E' if i + 2 < n && matches!(c[i + 1], b'+' | b'-') && c[i + 2].is_ascii_digit() => i += 2,
            b'Z' if i + 1 == n => {
                groups += 1;
                break;
            }
            b'%' if i + 1 == n => return Some(Numeric::Size),
            b if b.is_ascii_alphabetic() => {
                let u = i;
                while i < n && c[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let kind = unit(&c[u..i])?;
                if i == n {
                    return Some(kind);
                }
                // Go-style durations continue with digits: `1h30m`.
                if kind != Numeric::Duration || !c[i].is_ascii_digit() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(if groups == 1 && !version { Numeric::Number } else { Numeric::Timestamp })
}

fn unit(u: &[u8]) -> Option<Numeric> {
    const TIME: &[&[u8]] = &[b"ns", b"us", b"ms", b"s", b"sec", b"secs", b"m", b"min", b"mins", b"h", b"hr", b"hrs", b"d", b"day", b"days"];
    const SIZE: &[&[u8]] = &[
        b"b", b"B", b"k", b"K", b"kb", b"KB", b"kB", b"KiB", b"M", b"MB", b"MiB", b"mb", b"G", b"GB", b"GiB", b"gb", b"T", b"TB", b"TiB", b"tb", b"PB", b"PiB", b"bytes", b"bps", b"Kbps", b"Mbps",
        b"Gbps",
    ];
    if TIME.contains(&u) {
        Some(Numeric::Duration)
    } else if SIZE.contains(&u) {
        Some(Numeric::Size)
    } else {
        None
    }
}

/// `scheme://...`: the scheme's length.
fn url_scheme(c: &[u8]) -> Option<usize> {
    let k = c.windows(3).position(|w| w == b"://")?;
    if k == 0 || !c[0].is_ascii_alphabetic() || !c[..k].iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')) {
        return None;
    }
    (c.len() > k + 3).then_some(k)
}

fn is_path(c: &[u8]) -> bool {
    let body = |rest: &[u8]| rest.first().is_some_and(|&b| is_word(b) || matches!(b, b'.' | b'_' | b'-' | b'~' | b'*' | b'$'));
    match c {
        [b'/', rest @ ..] => body(rest),
        [b'.', b'/', rest @ ..] | [b'~', b'/', rest @ ..] | [b'.', b'.', b'/', rest @ ..] => body(rest),
        [d, b':', b'\\', ..] => d.is_ascii_alphabetic(),
        _ => false,
    }
}

fn is_email(c: &[u8]) -> bool {
    let Some(at) = c.iter().position(|&b| b == b'@') else { return false };
    let (local, domain) = (&c[..at], &c[at + 1..]);
    !local.is_empty()
        && local.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-'))
        && domain.contains(&b'.')
        && domain.split(|&b| b == b'.').all(|l| !l.is_empty() && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-'))
        && domain.last().is_some_and(|b| b.is_ascii_alphabetic())
}

fn is_uuid(c: &[u8]) -> bool {
    c.len() == 36 && c.iter().enumerate().all(|(i, &b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { is_hex(b) })
}

/// `a.b.c.d` or `a.b.c.d:port`: `Some(has_port)`.
fn ipv4_port(c: &[u8]) -> Option<bool> {
    let mut i = 0;
    for octet in 0..4 {
        let s = i;
        while i < c.len() && c[i].is_ascii_digit() && i - s < 3 {
            i += 1;
        }
        if i == s {
            return None;
        }
        if octet < 3 {
            if i >= c.len() || c[i] != b'.' {
                return None;
            }
            i += 1;
        }
    }
    if i == c.len() {
        return Some(false);
    }
    if c[i] == b':' && i + 1 < c.len() && c[i + 1..].iter().all(u8::is_ascii_digit) {
        return Some(true);
    }
    None
}

/// IPv6 (hex groups and colons, at least two colons, a digit or `::`), with an optional port
/// in brackets form `[...]:port` already stripped of its brackets by the caller.
fn is_ipv6(c: &[u8]) -> bool {
    let colons = c.iter().filter(|&&b| b == b':').count();
    colons >= 2
        && c.iter().all(|&b| is_hex(b) || b == b':' || b == b'.')
        && (c.windows(2).any(|w| w == b"::") || c.iter().any(u8::is_ascii_digit))
        && c.split(|&b| b == b':').all(|g| g.len() <= 4 || g.contains(&b'.'))
}

fn is_hostname(c: &[u8]) -> bool {
    const TLDS: &[&[u8]] = &[
        b"com", b"net", b"org", b"edu", b"gov", b"mil", b"io", b"co", b"uk", b"de", b"fr", b"jp", b"cn", b"ru", b"br", b"au", b"ca", b"eu", b"nl", b"se", b"ch", b"us", b"info", b"biz", b"local",
        b"internal", b"lan", b"arpa", b"cloud", b"dev", b"localdomain",
    ];
    // The last label first: it rules out almost every dotted word (class names, file names).
    let Some(dot) = c.iter().rposition(|&b| b == b'.') else { return false };
    let tld = &c[dot + 1..];
    if !TLDS.iter().any(|t| t.eq_ignore_ascii_case(tld)) {
        return false;
    }
    c[..dot].split(|&b| b == b'.').all(|label| !label.is_empty() && label.len() <= 63 && label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `0x1f`, or 6+ hex digits with both digits and letters (`7bd8a1f`).
fn is_hex_word(c: &[u8]) -> bool {
    if c.len() > 2 && c[0] == b'0' && matches!(c[1], b'x' | b'X') {
        return c[2..].iter().all(|&b| is_hex(b));
    }
    c.len() >= 6 && c.iter().all(|&b| is_hex(b)) && c.iter().any(u8::is_ascii_digit) && c.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(line: &str) -> String {
        Masker::default().mask(line)
    }

    fn tokens(line: &str) -> Vec<String> {
        let mut out = MaskedLine::new();
        Masker::default().mask_into(line, &mut out);
        out.tokens().map(str::to_string).collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(m("took 42 ms for -7 items, ratio 1.5e-3 and +3.25"), "took <*> for <*> items, ratio <*> and <*>");
        assert_eq!(m("size 5KB of 3.5GiB (99%)"), "size <*> of <*> (<*>)");
        // A unit written apart joins its number.
        assert_eq!(m("(estimated size 16.0 KB, free 2.3 GB) took 300 ms"), "(estimated size <*>, free <*>) took <*>");
        assert_eq!(m("2103 bytes result, 5 MB/s"), "<*> bytes result, <*> MB/s");
        assert_eq!(m("Finished task 1.0 in stage 0.0 (TID 12). 2103 bytes result"), "Finished task <*> in stage <*> (TID <*>). <*> bytes result");
        assert_eq!(m("keyId: -127633188)"), "keyId: <*>)");
        // Ordinal-like and unit-less letters stay.
        assert_eq!(m("the 2nd try"), "the 2nd try");
    }

    #[test]
    fn durations() {
        assert_eq!(m("timeout after 10ms, retry in 2.5s or 1h30m, 3min"), "timeout after <*>, retry in <*> or <*>, <*>");
        let cfg = MaskConfig { durations: false, ..MaskConfig::default() };
        assert_eq!(Masker::new(cfg).mask("timeout after 10ms and 5KB"), "timeout after 10ms and <*>");
    }

    #[test]
    fn timestamps_and_versions() {
        assert_eq!(m("at 2015-07-29 17:41:44,747 and 2026-11-20T10:00:00.123Z"), "at <*> <*> and <*>");
        assert_eq!(m("2005-06-03-15.42.50.675872 20171223-22:15:29:606"), "<*> <*>");
        assert_eq!(m("upgraded to v1.2.3 from 1.2.2"), "upgraded to <*> from <*>");
        assert_eq!(m("jetty-6.1.26 started"), "jetty-<*> started");
        let cfg = MaskConfig { timestamps: false, ..MaskConfig::default() };
        assert_eq!(Masker::new(cfg).mask("at 2015-07-29 port 80"), "at 2015-07-29 port <*>");
    }

    #[test]
    fn hex_and_uuids() {
        assert_eq!(m("ptr 0x7fff5fbff8c8 obj QuorumServer@7bd8a1f"), "ptr <*> obj QuorumServer@<*>");
        assert_eq!(m("req 123e4567-e89b-12d3-a456-426614174000 done"), "req <*> done");
        assert_eq!(m("sha deadbeef01 and word deadbeef"), "sha <*> and word deadbeef");
    }

    #[test]
    fn ips_and_hosts() {
        assert_eq!(m("from 10.251.73.220:50010 to /10.10.34.11:3888 and [173.234.31.186]"), "from <*>:<*> to /<*>:<*> and [<*>]");
        assert_eq!(m("ipv6 fe80::1ff:fe23:4567:890a and ::1"), "ipv6 <*> and <*>");
        assert_eq!(m("reverse mapping for ns.marryaldkfaczcz.com [1.2.3.4]"), "reverse mapping for <*> [<*>]");
        assert_eq!(m("NodeId: MSRA-SA-41.fareast.corp.microsoft.com:8042,"), "NodeId: <*>:<*>,");
        // Class names and file names are not hosts.
        assert_eq!(m("org.apache.hadoop.mapreduce.v2.app.MRAppMaster loaded app.py"), "org.apache.hadoop.mapreduce.v2.app.MRAppMaster loaded app.py");
    }

    #[test]
    fn paths_urls_emails() {
        assert_eq!(m("ok /etc/httpd/conf/workers2.properties"), "ok <*>");
        assert_eq!(m("run ./bin/start.sh and ../x and ~/y and C:\\temp\\a.txt"), "run <*> and <*> and <*> and <*>");
        assert_eq!(m("Connecting to driver: spark://CoarseGrainedScheduler@10.10.34.11:48069"), "Connecting to driver: spark://<*>");
        assert_eq!(m("mail ops@example.com now"), "mail <*> now");
        // A lone slash is not a path.
        assert_eq!(m("a / b"), "a / b");
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(m(r#"file "no such file" not found"#), r#"file "<*>" not found"#);
        assert_eq!(m("Added global filter 'safety' (class=x)"), "Added global filter '<*>' (class=<*>)");
        assert_eq!(m(r#"say "a \"b\" c", done"#), r#"say "<*>", done"#);
        // Apostrophes are not quotes.
        assert_eq!(m("jk2_init() Can't find child 123"), "jk2_init() Can't find child <*>");
    }

    #[test]
    fn key_values() {
        assert_eq!(m("user=alice uid=0 euid=0 ruser= rhost=1.2.3.4"), "user=<*> uid=<*> euid=<*> ruser= rhost=<*>");
        assert_eq!(m("new date =20171223, type=1,1.0,old=2.0"), "new date =<*>, type=<*>,old=<*>");
        assert_eq!(m("(uid=0)"), "(uid=<*>)");
        assert_eq!(m(r#"ts=2024-04-16T15:10:43Z level=info msg="Removing target 42" key="/var/log/x y""#), r#"ts=<*> level=info msg="Removing target <*>" key=<*>"#);
        assert_eq!(m("a==b x=>y"), "a==b x=>y");
    }

    #[test]
    fn json() {
        assert_eq!(tokens(r#"{"user":"bob","n":3,"tags":[1,2],"inner":{"ok":true}}"#), [r#"{"user":<*>,"#, r#""n":<*>,"#, r#""tags":<*>,"#, r#""inner":{"ok":<*>}}"#]);
        assert_eq!(m(r#"got {"msg": "user 42 logged in", "id": "x y"} end"#), r#"got {"msg":"user <*> logged in", "id":<*>} end"#);
        // Not JSON: stays text.
        assert_eq!(m("[preauth] [TERM, HUP, INT] {a b}"), "[preauth] [TERM, HUP, INT] {a b}");
        assert_eq!(m("data=[1, 2, 3] list [1,2]"), "data=<*> list <*>");
    }

    #[test]
    fn ids_inside_words() {
        assert_eq!(m("PacketResponder 1 for block blk_-6952295868487656571 terminating"), "PacketResponder <*> for block blk_<*> terminating");
        assert_eq!(m("Launching attempt_1445144423722_0020_m_000001_0"), "Launching attempt_<*>");
        assert_eq!(m("task_1445144423722_0020_r_000000 and x_m_1"), "task_<*> and x_m_<*>");
        assert_eq!(m("pod web-7d4b9c5f8-x8kq2 restarted"), "pod web-<*> restarted");
        assert_eq!(m("ssh2 log4j x86 R02-M1-N0 IPv4 Slf4jLogger"), "ssh2 log4j x86 R02-M1-N0 IPv4 Slf4jLogger");
        assert_eq!(m("PendingReds:0 ScheduledMaps:12"), "PendingReds:<*> ScheduledMaps:<*>");
        assert_eq!(m("auxiliary processor.........................0"), "auxiliary processor.........................<*>");
    }

    #[test]
    fn variable_length_lists_collapse() {
        assert_eq!(m("ask 10.250.14.224:50010 to delete blk_-1 blk_2 blk_3"), "ask <*>:<*> to delete blk_<*>");
        assert_eq!(m("ask 10.250.14.224:50010 to delete blk_-1"), "ask <*>:<*> to delete blk_<*>");
        assert_eq!(m("ids 1, 2, 3, 4 done"), "ids <*>, <*> done");
        assert_eq!(m("Received disconnect from 1.2.3.4: 11: Bye"), "Received disconnect from <*>: <*>: Bye");
        // Plain wildcards keep their arity.
        assert_eq!(m("onExtend:1514038530000 14 0 4"), "onExtend:<*> <*> <*> <*>");
    }

    #[test]
    fn every_class_can_be_switched_off() {
        let off = MaskConfig {
            numbers: false,
            durations: false,
            timestamps: false,
            hex: false,
            uuids: false,
            ips: false,
            hostnames: false,
            paths: false,
            urls: false,
            emails: false,
            quoted: false,
            key_values: false,
            keep_value_keys: vec![],
            json: false,
            ids: false,
        };
        let line = r#"42 10ms 2015-07-29 0x1f 123e4567-e89b-12d3-a456-426614174000 10.0.0.1 a.example.com /etc/x http://x/y a@b.com "q" k=v {"a":1} x8kq2"#;
        assert_eq!(Masker::new(off).mask(line), line);
        let parsed: MaskConfig = serde_json::from_str(r#"{"quoted": false}"#).unwrap();
        assert!(!parsed.quoted && parsed.numbers);
        assert!(serde_json::from_str::<MaskConfig>(r#"{"qouted": false}"#).is_err());
    }

    #[test]
    fn whitespace_and_unicode() {
        assert_eq!(tokens("  a\t\tb  "), ["a", "b"]);
        assert_eq!(m("größe 12 überschritten"), "größe <*> überschritten");
        assert!(tokens("").is_empty());
    }
}
