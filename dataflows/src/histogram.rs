//! The quantile sketch behind every view's p50/p95/p99: a mergeable, retractable log-bucket
//! histogram (DDSketch-style) with a relative error of at most 1%.
//!
//! # Why not t-digest
//!
//! Views are differential collections: when a late or corrected point arrives, the old aggregate
//! is retracted and the new one inserted. A t-digest's centroids depend on insertion order and
//! cannot be subtracted. A histogram over fixed buckets can: it is a vector of counts, merging is
//! addition and retracting is subtraction, so [`LogHistogram::merge`] and
//! [`LogHistogram::retract`] form a group and `h.merge(x); h.retract(x)` gives back `h` exactly.
//!
//! # The error bound
//!
//! Buckets grow geometrically. For a relative accuracy `a`, let `gamma = (1 + a) / (1 - a)`. A
//! magnitude `v > 0` goes to bucket `i = ceil(log_gamma(v))`, so `gamma^(i-1) < v <= gamma^i`,
//! and bucket `i` is represented by `estimate = 2 * gamma^i / (gamma + 1)`. Then
//!
//! ```text
//! estimate / v  in  [2 / (gamma + 1), 2 * gamma / (gamma + 1))  =  [1 - a, 1 + a)
//! ```
//!
//! (at `v = gamma^i` the ratio is `2 / (gamma + 1) = 1 - a`; as `v -> gamma^(i-1)` it tends to
//! `2 * gamma / (gamma + 1) = 1 + a`), hence `|estimate - v| <= a * |v|`. Equivalently,
//! `a = (gamma - 1) / (gamma + 1) = tanh(ln(gamma) / 2)`.
//!
//! `a = 0.01` exactly gives `ln(gamma) = 0.0200006667`. We round that down to
//! `ln(gamma) = 0.02` (so `1 / ln(gamma) = 50` and the index is `ceil(50 * ln(v))`), which means
//! `a = tanh(0.01) = 0.0099996667`. The margin of `3.3e-7` under
//! [`LogHistogram::RELATIVE_ERROR`] absorbs the rounding of `ln` and `exp` in `f64` (below
//! `1e-12` relative over the whole `f64` range), so the 1% bound holds strictly even for values
//! sitting on a bucket boundary (such as `1.0 = gamma^0`, whose estimate `1 - tanh(0.01)` is
//! `0.0099997` below it) or nudged into the neighbouring bucket by rounding. A test sweeps every
//! boundary.
//!
//! Negative values are bucketed by magnitude in their own store; values with
//! `|v| < MIN_POSITIVE` are counted in a zero bucket and reproduced as exactly `0.0`. A quantile
//! is the estimate of the bucket that holds the value of the requested rank; since bucketing is
//! monotone, it is within 1% of the exact nearest-rank quantile.
//!
//! # Canonical layout
//!
//! The histogram is part of differential dataflow data, so `Eq`, `Ord` and `Hash` must depend on
//! the multiset of recorded values only, never on the order of records, merges and retractions.
//! Each store is a dense run of counts starting at `offset`, trimmed of zero counts at both ends
//! after every operation (an empty store has `offset == 0`), so the derived comparisons are
//! structural and canonical. Counts are `i64` so that a retraction arriving before its insertion
//! can be represented, and they add with wrapping arithmetic so merge and retract are exact
//! inverses under any input.
//!
//! # Example
//!
//! ```
//! use observebridge_dataflows::histogram::LogHistogram;
//!
//! let mut h = LogHistogram::new();
//! for ms in 1..=100 {
//!     h.record(f64::from(ms), 1);
//! }
//! let p95 = h.quantile(0.95).unwrap_or_default();
//! assert!((p95 - 95.0).abs() <= 0.01 * 95.0);
//!
//! let mut late = LogHistogram::new();
//! late.record(250.0, 1);
//! let before = h.clone();
//! h.merge(&late);
//! h.retract(&late);
//! assert_eq!(h, before);
//! ```

use serde::{Deserialize, Serialize};

/// `ln(gamma)`: 0.02, i.e. a relative accuracy of `tanh(0.01) = 0.0099996667` (see module doc).
const LN_GAMMA: f64 = 0.02;
/// `1 / ln(gamma)`, so that the bucket index is a multiplication rather than a division.
const INV_LN_GAMMA: f64 = 50.0;

/// A mergeable, retractable quantile sketch with a relative error of at most 1%.
///
/// Built by [`record`](Self::record) (one call per metric point or span duration), combined with
/// [`merge`](Self::merge) and [`retract`](Self::retract) inside reductions, and read with
/// [`quantile`](Self::quantile) when a view row is emitted. Equality, ordering and hashing are
/// structural and canonical: histograms of the same multiset of values are `==`, whatever the
/// order in which they were built.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct LogHistogram {
    /// Sum of all bucket counts (wrapping).
    count: i64,
    /// Count of values with `|v| < MIN_POSITIVE`.
    zero: i64,
    /// Negative values, bucketed by magnitude.
    negative: Buckets,
    /// Positive values.
    positive: Buckets,
}

impl LogHistogram {
    /// The stated bound on `|estimate - exact| / |exact|` for every quantile (values in the zero
    /// bucket excepted, see [`MIN_POSITIVE`](Self::MIN_POSITIVE)).
    pub const RELATIVE_ERROR: f64 = 0.01;

    /// Values with |v| below this are counted in the zero bucket (exactly reproduced as 0.0).
    pub const MIN_POSITIVE: f64 = 1e-9;

    /// An empty histogram, equal to `LogHistogram::default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `count` occurrences of `value`. Allocation-free when the value's bucket lies
    /// within the range already held; growth is amortised otherwise.
    ///
    /// Non-finite values are ignored by contract: callers filter them out before recording (a
    /// debug assertion checks this). A `count` of zero is a no-op; a count above `i64::MAX`
    /// saturates to `i64::MAX`.
    #[inline]
    pub fn record(&mut self, value: f64, count: u64) {
        debug_assert!(value.is_finite(), "histogram: cannot record non-finite value {value}");
        if !value.is_finite() || count == 0 {
            return;
        }
        let delta = i64::try_from(count).unwrap_or(i64::MAX);
        self.count = self.count.wrapping_add(delta);
        let magnitude = value.abs();
        if magnitude < Self::MIN_POSITIVE {
            self.zero = self.zero.wrapping_add(delta);
        } else if value > 0.0 {
            self.positive.add(Self::bucket_index(magnitude), delta);
        } else {
            self.negative.add(Self::bucket_index(magnitude), delta);
        }
    }

    /// Adds every count of `other` to `self`. Commutative and associative.
    pub fn merge(&mut self, other: &Self) {
        self.combine(other, false);
    }

    /// Subtracts every count of `other` from `self`: the exact inverse of
    /// [`merge`](Self::merge), so `h.merge(x); h.retract(x)` gives back `h` (`==`, internal
    /// layout included). Counts may go negative while a retraction waits for its insertion;
    /// [`quantile`](Self::quantile) returns `None` meanwhile.
    pub fn retract(&mut self, other: &Self) {
        self.combine(other, true);
    }

    /// The number of recorded values: the sum of all bucket counts, which is negative when
    /// retractions outweigh insertions.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// True when no bucket holds a nonzero count, i.e. when `self == LogHistogram::default()`.
    /// (A histogram whose positive and negative counts cancel has `count() == 0` but is not
    /// empty.)
    pub fn is_empty(&self) -> bool {
        self.zero == 0 && self.negative.counts.is_empty() && self.positive.counts.is_empty()
    }

    /// The q-quantile (0 <= q <= 1) by nearest rank: the estimate of the value at rank
    /// `max(1, ceil(q * n))` (computed in `f64`) in ascending order (negative values first, then
    /// zero, then positive), within [`RELATIVE_ERROR`](Self::RELATIVE_ERROR) of the exact value.
    /// `None` when empty, when any bucket count is negative, or when `q` is outside `[0, 1]` or
    /// NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) || self.count <= 0 {
            return None;
        }
        let all_counts = || {
            self.negative
                .counts
                .iter()
                .chain(self.positive.counts.iter())
                .chain(std::iter::once(&self.zero))
        };
        if all_counts().any(|&c| c < 0) {
            return None;
        }
        let n = self.count;
        // Float to int `as` saturates; the clamp then keeps the rank within [1, n].
        let rank = ((q * n as f64).ceil() as i64).clamp(1, n);
        let mut seen: i64 = 0;
        // Ascending values: negative magnitudes from the largest down, zero, then positives.
        for (index, count) in self.negative.iter().rev() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Some(-Self::bucket_value(index));
            }
        }
        seen = seen.saturating_add(self.zero);
        if seen >= rank {
            return Some(0.0);
        }
        for (index, count) in self.positive.iter() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Some(Self::bucket_value(index));
            }
        }
        // Only reachable if `count` wrapped, i.e. more than i64::MAX values were recorded.
        None
    }

    /// The bucket index of a magnitude: `ceil(log_gamma(magnitude))`.
    ///
    /// Meant for finite `magnitude >= MIN_POSITIVE` (what [`record`](Self::record) passes), for
    /// which the index lies in `[-1036, 35490]`. Other inputs do not panic but give meaningless
    /// indexes. Public for callers that pre-bucket values and for tests.
    #[inline]
    pub fn bucket_index(magnitude: f64) -> i32 {
        let x = magnitude.ln() * INV_LN_GAMMA;
        // `ceil` without a libm call on baseline x86-64 and without a branch (values straddling
        // 1.0 would mispredict it): truncate (saturating), then round up if anything was cut.
        let truncated = x as i32;
        truncated.saturating_add(i32::from(f64::from(truncated) < x))
    }

    /// The representative magnitude of bucket `index`: `2 * gamma^index / (gamma + 1)`, within
    /// 1% of every magnitude in the bucket (capped at `f64::MAX` for the topmost bucket).
    ///
    /// It lies strictly inside its bucket, so `bucket_index(bucket_value(i)) == i`: recording
    /// pre-bucketed values is lossless.
    pub fn bucket_value(index: i32) -> f64 {
        // ln(2 / (gamma + 1)) folded into the exponent so gamma^index cannot overflow early.
        let ln_factor = (2.0 / (LN_GAMMA.exp() + 1.0)).ln();
        (f64::from(index) * LN_GAMMA + ln_factor).exp().min(f64::MAX)
    }

    fn combine(&mut self, other: &Self, negate: bool) {
        let sign = |c: i64| if negate { c.wrapping_neg() } else { c };
        self.count = self.count.wrapping_add(sign(other.count));
        self.zero = self.zero.wrapping_add(sign(other.zero));
        self.negative.combine(&other.negative, negate);
        self.positive.combine(&other.positive, negate);
    }
}

/// A dense run of bucket counts for indexes `[offset, offset + counts.len())`.
///
/// Invariant (canonical form): `counts` has no zero at either end, and an empty run has
/// `offset == 0`. Indexes stay within `[-1036, 35490]` for data built by [`LogHistogram`], so
/// the run never spans more than ~36.5K buckets and positions fit in `i32`.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
struct Buckets {
    /// Bucket index of `counts[0]`.
    offset: i32,
    /// Counts of consecutive buckets.
    counts: Vec<i64>,
}

impl Buckets {
    /// Adds `delta` (nonzero) to bucket `index`.
    #[inline]
    fn add(&mut self, index: i32, delta: i64) {
        let position = i64::from(index) - i64::from(self.offset);
        let slot = match usize::try_from(position) {
            Ok(p) if p < self.counts.len() => p,
            _ => self.grow_for(index),
        };
        let count = &mut self.counts[slot];
        *count = count.wrapping_add(delta);
        if *count == 0 {
            self.trim();
        }
    }

    /// The slow path of [`add`](Self::add): `index` is outside the run.
    #[cold]
    #[inline(never)]
    fn grow_for(&mut self, index: i32) -> usize {
        self.grow_to_cover(index, index)
    }

    /// Extends the run with zero counts so it covers `[low, high]`; returns the position of
    /// `low`. Growth to the right is amortised by `Vec`; growth to the left shifts the run once.
    fn grow_to_cover(&mut self, low: i32, high: i32) -> usize {
        if self.counts.is_empty() {
            self.offset = low;
            self.counts.resize((high - low) as usize + 1, 0);
            return 0;
        }
        if low < self.offset {
            let extra = (self.offset - low) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, extra));
            self.offset = low;
        }
        let needed = (high - self.offset) as usize + 1;
        if needed > self.counts.len() {
            self.counts.resize(needed, 0);
        }
        (low - self.offset) as usize
    }

    /// Adds (or with `negate`, subtracts) every count of `other`, then restores canonical form.
    fn combine(&mut self, other: &Self, negate: bool) {
        let Some(last) = other.counts.len().checked_sub(1) else {
            return;
        };
        let start = self.grow_to_cover(other.offset, other.offset + last as i32);
        let targets = &mut self.counts[start..=start + last];
        if negate {
            for (t, &c) in targets.iter_mut().zip(&other.counts) {
                *t = t.wrapping_sub(c);
            }
        } else {
            for (t, &c) in targets.iter_mut().zip(&other.counts) {
                *t = t.wrapping_add(c);
            }
        }
        self.trim();
    }

    /// Removes zero counts at both ends (resetting `offset` to 0 when nothing is left).
    fn trim(&mut self) {
        let Some(first) = self.counts.iter().position(|&c| c != 0) else {
            self.counts.clear();
            self.offset = 0;
            return;
        };
        if let Some(last) = self.counts.iter().rposition(|&c| c != 0) {
            self.counts.truncate(last + 1);
        }
        if first > 0 {
            self.counts.drain(..first);
            self.offset += first as i32;
        }
    }

    /// `(bucket index, count)` pairs in ascending index order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, i64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .map(|(position, &count)| (self.offset + position as i32, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::hash::{DefaultHasher, Hash, Hasher};

    const QUANTILES: [f64; 9] = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];

    fn hist(points: &[(f64, u64)]) -> LogHistogram {
        let mut h = LogHistogram::new();
        for &(v, c) in points {
            h.record(v, c);
        }
        h
    }

    fn hash_of(h: &LogHistogram) -> u64 {
        let mut hasher = DefaultHasher::new();
        h.hash(&mut hasher);
        hasher.finish()
    }

    /// The exact nearest-rank quantile: the value at rank max(1, ceil(q * n)), 1-based.
    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let n = sorted.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        sorted[rank - 1]
    }

    fn within_bound(estimate: f64, exact: f64) -> bool {
        if exact == 0.0 {
            estimate == 0.0
        } else {
            (estimate - exact).abs() <= LogHistogram::RELATIVE_ERROR * exact.abs()
        }
    }

    fn assert_quantiles_within_bound(name: &str, values: &[f64]) {
        let h = hist(&values.iter().map(|&v| (v, 1)).collect::<Vec<_>>());
        assert_eq!(h.count(), values.len() as i64, "{name}: count");
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in QUANTILES {
            let exact = exact_quantile(&sorted, q);
            let estimate = h.quantile(q).expect("non-empty histogram has quantiles");
            assert!(
                within_bound(estimate, exact),
                "{name}: q={q} exact={exact} estimate={estimate}"
            );
        }
    }

    fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
        // Box-Muller; 1 - u keeps the logarithm finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
        -(1.0 - rng.random::<f64>()).ln() * mean
    }

    #[test]
    fn quantiles_are_within_one_percent_on_random_distributions() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x0b5e_4e0b);
        let n = 50_000;

        let uniform: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..1000.0)).collect();
        assert_quantiles_within_bound("uniform [0, 1000)", &uniform);

        let uniform_signed: Vec<f64> = (0..n).map(|_| rng.random_range(-500.0..500.0)).collect();
        assert_quantiles_within_bound("uniform [-500, 500)", &uniform_signed);

        // sigma = 2.3: 99.7% of values within 1e-3 .. 1e3, six orders of magnitude.
        let log_normal: Vec<f64> = (0..n).map(|_| (2.3 * standard_normal(&mut rng)).exp()).collect();
        let (lo, hi) = log_normal
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(hi / lo > 1e6, "log-normal sample spans {lo} .. {hi}");
        assert_quantiles_within_bound("log-normal", &log_normal);

        let exp_ms: Vec<f64> = (0..n).map(|_| exponential(&mut rng, 250.0)).collect();
        assert_quantiles_within_bound("exponential mean 250", &exp_ms);

        let exp_ns: Vec<f64> = (0..n).map(|_| exponential(&mut rng, 3e11)).collect();
        assert_quantiles_within_bound("exponential mean 3e11", &exp_ns);

        // 20% exact zeros, 30% negative log-normal, 50% positive log-normal.
        let mixed: Vec<f64> = (0..n)
            .map(|_| {
                let pick: f64 = rng.random();
                let magnitude = (2.3 * standard_normal(&mut rng)).exp();
                if pick < 0.2 {
                    0.0
                } else if pick < 0.5 {
                    -magnitude
                } else {
                    magnitude
                }
            })
            .collect();
        assert_quantiles_within_bound("mixed signs and zeros", &mixed);

        // Mostly zeros: the middle quantiles must be exactly 0.0.
        let zeros: Vec<f64> = (0..1000)
            .map(|i| match i % 10 {
                0 => -3.5,
                9 => 7.25,
                _ => 0.0,
            })
            .collect();
        assert_quantiles_within_bound("mostly zeros", &zeros);
        assert_eq!(hist(&zeros.iter().map(|&v| (v, 1)).collect::<Vec<_>>()).quantile(0.5), Some(0.0));
    }

    #[test]
    fn every_bucket_boundary_is_within_one_percent() {
        let lowest = LogHistogram::bucket_index(LogHistogram::MIN_POSITIVE);
        let highest = LogHistogram::bucket_index(f64::MAX);
        assert_eq!((lowest, highest), (-1036, 35490));
        for index in lowest..=highest {
            let boundary = (f64::from(index) * LN_GAMMA).exp();
            for v in [boundary.next_down(), boundary, boundary.next_up()] {
                if !(LogHistogram::MIN_POSITIVE..=f64::MAX).contains(&v) {
                    continue;
                }
                let estimate = LogHistogram::bucket_value(LogHistogram::bucket_index(v));
                assert!(within_bound(estimate, v), "index {index}: v={v} estimate={estimate}");
            }
            let representative = LogHistogram::bucket_value(index);
            assert_eq!(LogHistogram::bucket_index(representative), index, "round trip");
        }
        // The effective accuracy tanh(ln(gamma) / 2) = tanh(0.01) sits 3.3e-7 under the bound.
        let a = (LN_GAMMA / 2.0).tanh();
        assert!((a - 0.009_999_666_679_999_46).abs() < 1e-15, "a = {a}");
        assert!(LogHistogram::RELATIVE_ERROR - a > 3.3e-7);
        assert_eq!(INV_LN_GAMMA * LN_GAMMA, 1.0);
    }

    #[test]
    fn single_value() {
        for v in [1.0, 42.0, -42.0, 1e-8, -1e-8, 1e12, -1e12, f64::MAX, -f64::MAX, 0.999] {
            let h = hist(&[(v, 1)]);
            let expected = LogHistogram::bucket_value(LogHistogram::bucket_index(v.abs())).copysign(v);
            for q in QUANTILES {
                assert_eq!(h.quantile(q), Some(expected), "v={v} q={q}");
            }
            assert!(within_bound(expected, v), "v={v} estimate={expected}");
            assert_eq!(h.count(), 1);
            assert!(!h.is_empty());
        }
        // 1.0 sits on a bucket boundary (gamma^0): its estimate is 1 - tanh(0.01).
        assert_eq!(hist(&[(1.0, 1)]).quantile(0.5), Some(1.0 - 0.01f64.tanh()));
    }

    #[test]
    fn tiny_magnitudes_are_zero() {
        for v in [0.0, -0.0, 5e-10, -5e-10, f64::MIN_POSITIVE, 9.99e-10] {
            let h = hist(&[(v, 3)]);
            assert_eq!(h.quantile(0.5), Some(0.0), "v={v}");
            assert_eq!(h, LogHistogram { count: 3, zero: 3, ..LogHistogram::default() });
        }
        // The threshold itself is the first nonzero bucket.
        let h = hist(&[(1e-9, 1)]);
        assert_eq!(h.positive.offset, -1036);
        assert!(within_bound(h.quantile(0.5).expect("non-empty"), 1e-9));
    }

    #[test]
    fn all_equal_values() {
        let h = hist(&[(123.456, 1000)]);
        let expected = LogHistogram::bucket_value(LogHistogram::bucket_index(123.456));
        for q in QUANTILES {
            assert_eq!(h.quantile(q), Some(expected));
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.positive.counts, vec![1000]);
        assert_eq!(h, hist(&[(123.456, 1); 1000]));
    }

    #[test]
    fn nearest_rank_order_is_negative_zero_positive() {
        // Values in well-separated buckets; ranks 1..=5.
        let h = hist(&[(3.0, 1), (-5.0, 1), (0.0, 1), (-0.5, 1), (100.0, 1)]);
        let e = |v: f64| LogHistogram::bucket_value(LogHistogram::bucket_index(v.abs())).copysign(v);
        assert_eq!(h.quantile(0.0), Some(e(-5.0))); // rank max(1, 0) = 1
        assert_eq!(h.quantile(0.2), Some(e(-5.0))); // rank 1
        assert_eq!(h.quantile(0.21), Some(e(-0.5))); // rank ceil(1.05) = 2
        assert_eq!(h.quantile(0.5), Some(0.0)); // rank ceil(2.5) = 3
        assert_eq!(h.quantile(0.6), Some(0.0)); // 0.6 * 5 rounds to 3.0: rank 3
        assert_eq!(h.quantile(0.61), Some(e(3.0))); // rank ceil(3.05) = 4
        assert_eq!(h.quantile(0.8), Some(e(3.0))); // rank 4
        assert_eq!(h.quantile(0.81), Some(e(100.0))); // rank 5
        assert_eq!(h.quantile(1.0), Some(e(100.0)));
    }

    #[test]
    fn empty_and_invalid_quantiles_are_none() {
        let empty = LogHistogram::new();
        assert_eq!(empty, LogHistogram::default());
        assert!(empty.is_empty());
        assert_eq!(empty.count(), 0);
        for q in QUANTILES {
            assert_eq!(empty.quantile(q), None);
        }
        let h = hist(&[(1.0, 1)]);
        for q in [-0.1, 1.1, f64::NAN, f64::INFINITY] {
            assert_eq!(h.quantile(q), None, "q={q}");
        }
    }

    #[test]
    fn negative_counts_give_no_quantile() {
        let mut h = hist(&[(1.0, 5), (2.0, 1)]);
        h.retract(&hist(&[(2.0, 3)]));
        assert_eq!(h.count(), 3);
        assert_eq!(h.quantile(0.5), None);
        // Cancelling signs: count 0 but not empty.
        let mut c = hist(&[(1.0, 1)]);
        c.retract(&hist(&[(-1.0, 1)]));
        assert_eq!(c.count(), 0);
        assert!(!c.is_empty());
        assert_eq!(c.quantile(0.5), None);
    }

    #[test]
    fn zero_count_is_a_no_op() {
        let mut h = hist(&[(5.0, 2)]);
        h.record(1e6, 0);
        assert_eq!(h, hist(&[(5.0, 2)]));
    }

    #[test]
    fn huge_count_saturates() {
        let h = hist(&[(1.0, u64::MAX)]);
        assert_eq!(h.count(), i64::MAX);
        assert_eq!(h.quantile(1.0), Some(1.0 - 0.01f64.tanh()));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "non-finite")]
    fn non_finite_values_are_a_contract_violation() {
        LogHistogram::new().record(f64::NAN, 1);
    }

    #[test]
    fn retraction_trims_the_layout() {
        let mut h = hist(&[(-2.0, 1), (1.0, 1), (1e6, 1), (1e-5, 2)]);
        let lows = hist(&[(1e-5, 2)]);
        let high = hist(&[(1e6, 1)]);
        h.retract(&high);
        h.retract(&lows);
        assert_eq!(h, hist(&[(1.0, 1), (-2.0, 1)]));
        assert_eq!((h.positive.offset, h.positive.counts.len()), (0, 1));
        h.retract(&hist(&[(1.0, 1), (-2.0, 1)]));
        assert_eq!(h, LogHistogram::default());
        assert_eq!(h.positive.offset, 0);
    }

    #[test]
    fn growth_in_both_directions() {
        let mut h = LogHistogram::new();
        h.record(10.0, 1);
        h.record(1e-3, 1); // left
        h.record(1e4, 1); // right
        let lo = LogHistogram::bucket_index(1e-3);
        let hi = LogHistogram::bucket_index(1e4);
        assert_eq!(h.positive.offset, lo);
        assert_eq!(h.positive.counts.len(), (hi - lo + 1) as usize);
        assert_eq!(h.positive.counts.iter().sum::<i64>(), 3);
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            -1e3..1e3f64,
            (-9.0f64..12.0).prop_map(|e| 10f64.powf(e)),
            (-9.0f64..12.0).prop_map(|e| -(10f64.powf(e))),
            (0u32..20).prop_map(f64::from),
        ]
    }

    fn points() -> impl Strategy<Value = Vec<(f64, u64)>> {
        proptest::collection::vec((value(), 1u64..5), 0..80)
    }

    proptest! {
        #[test]
        fn merging_parts_equals_the_whole(
            tagged in proptest::collection::vec((value(), 1u64..5, 0usize..4), 0..120)
        ) {
            let whole = hist(&tagged.iter().map(|&(v, c, _)| (v, c)).collect::<Vec<_>>());
            let parts: Vec<LogHistogram> = (0..4)
                .map(|p| hist(&tagged.iter().filter(|t| t.2 == p).map(|&(v, c, _)| (v, c)).collect::<Vec<_>>()))
                .collect();
            let mut forward = LogHistogram::new();
            for p in &parts {
                forward.merge(p);
            }
            let mut backward = LogHistogram::new();
            for p in parts.iter().rev() {
                backward.merge(p);
            }
            let mut left = parts[0].clone();
            left.merge(&parts[1]);
            let mut right = parts[2].clone();
            right.merge(&parts[3]);
            left.merge(&right);
            prop_assert_eq!(&forward, &whole);
            prop_assert_eq!(&backward, &whole);
            prop_assert_eq!(&left, &whole);
        }

        #[test]
        fn merge_is_commutative_and_associative(a in points(), b in points(), c in points()) {
            let (ha, hb, hc) = (hist(&a), hist(&b), hist(&c));
            let mut ab = ha.clone();
            ab.merge(&hb);
            let mut ba = hb.clone();
            ba.merge(&ha);
            prop_assert_eq!(&ab, &ba);
            let mut ab_c = ab.clone();
            ab_c.merge(&hc);
            let mut bc = hb.clone();
            bc.merge(&hc);
            let mut a_bc = ha.clone();
            a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);
            prop_assert_eq!(ab_c.count(), ha.count() + hb.count() + hc.count());
        }

        #[test]
        fn retract_inverts_merge(xs in points(), ys in points()) {
            let h = hist(&xs);
            let x = hist(&ys);
            let mut m = h.clone();
            m.merge(&x);
            m.retract(&x);
            prop_assert_eq!(&m, &h);
            // Retraction before insertion (negative counts in between).
            let mut r = h.clone();
            r.retract(&x);
            r.merge(&x);
            prop_assert_eq!(&r, &h);
            // Back to the empty histogram.
            m.retract(&h);
            prop_assert_eq!(&m, &LogHistogram::default());
            prop_assert!(m.is_empty());
            let mut n = LogHistogram::new();
            n.retract(&x);
            n.merge(&x);
            prop_assert_eq!(&n, &LogHistogram::default());
            // Retracting value by value from the combined histogram also empties it.
            let mut both = h.clone();
            both.merge(&x);
            for &(v, c) in xs.iter().chain(&ys) {
                both.retract(&hist(&[(v, c)]));
            }
            prop_assert_eq!(&both, &LogHistogram::default());
        }

        #[test]
        fn record_order_does_not_matter(
            (original, shuffled) in points().prop_flat_map(|p| (Just(p.clone()), Just(p).prop_shuffle()))
        ) {
            let a = hist(&original);
            let b = hist(&shuffled);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
            prop_assert_eq!(hash_of(&a), hash_of(&b));
            // A count of k is k single records.
            let singles: Vec<(f64, u64)> = shuffled
                .iter()
                .flat_map(|&(v, c)| std::iter::repeat_n((v, 1), c as usize))
                .collect();
            prop_assert_eq!(&hist(&singles), &a);
        }
    }

    #[test]
    fn serde_round_trip() {
        let h = hist(&[(-2.5, 1), (0.0, 2), (1e12, 3), (7.0, 1)]);
        let json = serde_json::to_string(&h).expect("serialize");
        let back: LogHistogram = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, h);
    }

    /// Rough ns per `record` (debug builds are several times slower than release):
    /// `cargo test -p observebridge-dataflows --lib histogram::tests::record_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn record_timing() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let values: Vec<f64> = (0..1_000_000).map(|_| (2.3 * standard_normal(&mut rng)).exp()).collect();
        let rounds = 10;
        let mut h = LogHistogram::new();
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for &v in &values {
                h.record(v, 1);
            }
        }
        let elapsed = start.elapsed();
        let records = rounds * values.len();
        eprintln!("record: {:.1} ns/record", elapsed.as_nanos() as f64 / records as f64);
        assert_eq!(h.count(), records as i64);
    }
}
