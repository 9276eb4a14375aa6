//! Deterministic randomness keyed by coordinates.
//!
//! Every pseudo-random value the generator uses is a pure function of the seed and of where it
//! is used (a stream tag, a scrape index, a pod, a minute of event time), never of a shared,
//! advancing generator. That is what makes the output independent of poll sizes, of the order
//! in which delayed messages are encoded, and of which signals are enabled: each emitter draws
//! from its own coordinates, and the conditions all signals share are keyed by event time.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream tags: keep the coordinate spaces of different uses apart.
pub(crate) mod tag {
    /// Per-minute load noise shared by every service.
    pub const LOAD: u64 = 1;
    /// Per-minute, per-service latency jitter.
    pub const LATENCY: u64 = 2;
    /// Per-message values of the metrics emitter.
    pub const METRICS: u64 = 3;
    /// Arrival delays of the metrics partition.
    pub const METRICS_DELAY: u64 = 4;
    /// Pod names.
    pub const POD: u64 = 5;
    /// Per-pod load skew and memory phase.
    pub const POD_SKEW: u64 = 6;
}

/// SplitMix64's finaliser: a bijective, well-mixing function of 64 bits.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit hash of the seed and a list of coordinates.
pub(crate) fn hash(seed: u64, coords: &[u64]) -> u64 {
    coords.iter().fold(mix64(seed), |h, &c| mix64(h ^ mix64(c)))
}

/// A uniform value in `[0, 1)` for the seed and coordinates.
pub(crate) fn unit(seed: u64, coords: &[u64]) -> f64 {
    // 53 high bits: exactly representable, never 1.0.
    (hash(seed, coords) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform value in `[-1, 1)` for the seed and coordinates.
pub(crate) fn signed_unit(seed: u64, coords: &[u64]) -> f64 {
    unit(seed, coords) * 2.0 - 1.0
}

/// A ChaCha8 stream for one message or one build step.
pub(crate) fn rng(seed: u64, coords: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(hash(seed, coords))
}

/// A standard normal sample (Box-Muller, one of the pair).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A count with mean `mean` and Poisson-like spread (normal approximation), never negative.
pub(crate) fn count(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    let draw = mean + mean.sqrt() * normal(rng);
    // The cast saturates; a negative draw becomes 0.
    draw.round().max(0.0) as u64
}

/// How many of `n` trials succeed with probability `p` (normal approximation of the binomial),
/// within `[0, n]`.
pub(crate) fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let n_f = n as f64;
    let draw = n_f * p + (n_f * p * (1.0 - p)).sqrt() * normal(rng);
    (draw.round().max(0.0) as u64).min(n)
}

/// The standard normal cumulative distribution function, to about 1e-7.
pub(crate) fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, fractional error below
/// 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_seed_and_every_coordinate() {
        let base = hash(1, &[2, 3]);
        assert_eq!(base, hash(1, &[2, 3]));
        assert_ne!(base, hash(2, &[2, 3]));
        assert_ne!(base, hash(1, &[3, 2]));
        assert_ne!(base, hash(1, &[2, 3, 0]));
    }

    #[test]
    fn unit_is_in_range_and_roughly_uniform() {
        let n = 10_000;
        let mean = (0..n)
            .map(|i| unit(9, &[i]))
            .inspect(|u| assert!((0.0..1.0).contains(u)))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!((normal_cdf(-1.959_963_985) - 0.025).abs() < 1e-6);
        assert!(normal_cdf(-40.0) >= 0.0 && normal_cdf(40.0) <= 1.0);
    }

    #[test]
    fn binomial_stays_within_trials() {
        let mut r = rng(3, &[]);
        for n in [0u64, 1, 5, 1000] {
            for p in [0.0, 0.01, 0.5, 0.99, 1.0] {
                assert!(binomial(&mut r, n, p) <= n);
            }
        }
    }
}
