//! Backoff for sink operations that retry transient failures for as long as it takes (the
//! engine's ingestion pauses meanwhile: backpressure, never loss).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Backoff between retries: `initial_backoff`, doubling after every failure up to `max_backoff`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Wait after the first failure, as a humantime string (`200ms`, `2s`). Default `200ms`.
    #[serde(default = "default_initial_backoff", with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts, as a humantime string (`10s`, `1m`). Default `10s`.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

fn default_initial_backoff() -> Duration {
    Duration::from_millis(200)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(10)
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { initial_backoff: default_initial_backoff(), max_backoff: default_max_backoff() }
    }
}

impl RetryConfig {
    /// The first rule the config breaks: the field (under `retry.`) and the reason.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.initial_backoff.is_zero() {
            return Some(("retry.initial_backoff", "must be greater than zero".to_owned()));
        }
        if self.max_backoff < self.initial_backoff {
            return Some((
                "retry.max_backoff",
                format!("{:?} is shorter than retry.initial_backoff {:?}", self.max_backoff, self.initial_backoff),
            ));
        }
        None
    }

    /// The wait after one of `current`.
    pub fn next(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_max_and_checks_its_rules() {
        let retry = RetryConfig { initial_backoff: Duration::from_millis(300), max_backoff: Duration::from_secs(1) };
        assert_eq!(retry.next(retry.initial_backoff), Duration::from_millis(600));
        assert_eq!(retry.next(Duration::from_millis(600)), Duration::from_secs(1));
        assert_eq!(retry.problem(), None);
        let zero = RetryConfig { initial_backoff: Duration::ZERO, ..RetryConfig::default() };
        assert_eq!(zero.problem().map(|p| p.0), Some("retry.initial_backoff"));
        let short = RetryConfig { initial_backoff: Duration::from_secs(5), max_backoff: Duration::from_secs(1) };
        assert_eq!(short.problem().map(|p| p.0), Some("retry.max_backoff"));
    }
}
