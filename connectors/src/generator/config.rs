//! The generator's configuration: serde data, checked by [`GeneratorConfig::validate`] before
//! anything is built.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{GeneratedSignal, GeneratorError};

/// Fewest services an estate can have: enough for every tier, a database, a queue and an
/// external dependency, and a call graph worth looking at.
pub const MIN_SERVICES: usize = 10;
/// Most services an estate can have.
pub const MAX_SERVICES: usize = 10_000;
/// Most pods one service can have.
const MAX_PODS_PER_SERVICE: usize = 1_000;
/// Longest scrape interval.
const MAX_SCRAPE_INTERVAL: Duration = Duration::from_secs(3_600);
/// Longest delay [`Disorder`] may hold a message back by (either delay).
const MAX_DISORDER_DELAY: Duration = Duration::from_secs(86_400);

/// What the built-in generator produces and how fast.
///
/// The output (every byte, in order) depends only on this configuration and the start time:
/// never on the wall clock, on how many records each poll asks for, or on the pace.
///
/// In a job spec:
///
/// ```yaml
/// seed: 7
/// services: 16
/// pods_per_service: 2
/// tenants: [acme, globex]
/// scrape_interval: 15s
/// start: 2026-03-02T00:00:00Z
/// pace: fast
/// duration: 6h
/// disorder: { max_delay: 20s, late_fraction: 0.01, late_by: 3m }
/// signals: [metrics, spans]
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Seed of every pseudo-random choice: the estate's names, sizes and call graph, the
    /// timeline of incidents, the noise on every value. Default 42.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Number of services in the estate, at least 10. Well-known names come first (frontend,
    /// api-gateway, checkout, cart, ...); further ones are numbered copies (`cart-2`). Default 12.
    #[serde(default = "default_services")]
    pub services: usize,
    /// Pods (replicas) of every service, at least 1. Default 3.
    #[serde(default = "default_pods_per_service")]
    pub pods_per_service: usize,
    /// Tenants the services are spread over, round-robin by service. A tenant other than
    /// `default` is written as the resource attribute `tenant.id`. Default `[default]`.
    #[serde(default = "default_tenants")]
    pub tenants: Vec<String>,
    /// Event time between two ticks, as a duration (`"10s"`): two scrapes of a pod's metrics,
    /// two batches of a service's spans. Default 10s.
    #[serde(default = "default_scrape_interval", with = "humantime_serde")]
    pub scrape_interval: Duration,
    /// Event time of the first scrape (RFC 3339). Default: the wall clock when the generator is
    /// built, floored to the scrape interval.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// `realtime` (a message is handed out once the wall clock, sped up by `speed`, reaches its
    /// arrival time) or `fast` (as fast as the consumer polls). Default `realtime`.
    #[serde(default)]
    pub pace: Pace,
    /// How much faster than the wall clock event time runs with `pace: realtime`; ignored with
    /// `fast`. Must be positive. Default 1.0.
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// Event-time span to generate (`"1h"`), after which the source is exhausted. Default: none,
    /// the generator runs until it is stopped.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Out-of-order and late arrivals. Default: none, messages arrive in event-time order.
    #[serde(default)]
    pub disorder: Disorder,
    /// The signals to generate, each on its own partition (`metrics`, `spans`, `logs`, `k8s`:
    /// Kubernetes watch events as JSON). Default: every signal.
    #[serde(default = "default_signals")]
    pub signals: Vec<GeneratedSignal>,
}

/// How the generator paces its output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// A message is ready once the wall clock since construction, times `speed`, has reached its
    /// arrival time (its event time plus any [`Disorder`] delay) measured from the start.
    #[default]
    Realtime,
    /// Every poll is answered at once, as many records as it asks for.
    Fast,
}

/// Deterministic out-of-order and late arrival.
///
/// Every message gets an arrival time: its event time plus a delay drawn from the seed. Most
/// messages are delayed by a pseudo-random amount in `[0, max_delay]`; a fraction
/// `late_fraction` of them is late, delayed by `late_by + max_delay`, so that every message up
/// to `late_by` newer than a late one has arrived before it (set `late_by` beyond the engine's
/// allowed lateness, 2 minutes by default, to exercise late records). Messages are handed out
/// in arrival order (at the same instant ordinary before late, then in generation order), so a
/// delay larger than the scrape interval reorders them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disorder {
    /// Largest delay of an ordinary message (`"30s"`). Default 0s: in order.
    #[serde(default = "default_max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    /// Fraction of messages, in `[0, 1]`, that arrive late: `late_by` after the latest
    /// ordinary message of their event time. Default 0.0.
    #[serde(default = "default_late_fraction")]
    pub late_fraction: f64,
    /// Delay of the late messages (`"3m"`). Default 3m, beyond the default allowed lateness of
    /// 2 minutes.
    #[serde(default = "default_late_by", with = "humantime_serde")]
    pub late_by: Duration,
}

fn default_seed() -> u64 {
    42
}

fn default_services() -> usize {
    12
}

fn default_pods_per_service() -> usize {
    3
}

fn default_tenants() -> Vec<String> {
    vec!["default".to_owned()]
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_signals() -> Vec<GeneratedSignal> {
    GeneratedSignal::ALL.to_vec()
}

fn default_speed() -> f64 {
    1.0
}

fn default_max_delay() -> Duration {
    Duration::ZERO
}

fn default_late_fraction() -> f64 {
    0.0
}

fn default_late_by() -> Duration {
    Duration::from_secs(180)
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: default_seed(),
            services: default_services(),
            pods_per_service: default_pods_per_service(),
            tenants: default_tenants(),
            scrape_interval: default_scrape_interval(),
            start: None,
            pace: Pace::default(),
            speed: default_speed(),
            duration: None,
            disorder: Disorder::default(),
            signals: default_signals(),
        }
    }
}

impl Default for Disorder {
    fn default() -> Self {
        Disorder {
            max_delay: default_max_delay(),
            late_fraction: default_late_fraction(),
            late_by: default_late_by(),
        }
    }
}

impl GeneratorConfig {
    /// Checks every field; called by [`Generator::new`](super::Generator::new) before anything
    /// is built, and by job-spec validation so a bad spec is refused before anything starts.
    pub fn validate(&self) -> Result<(), GeneratorError> {
        if self.services < MIN_SERVICES || self.services > MAX_SERVICES {
            return Err(invalid(
                "services",
                format!(
                    "must be between {MIN_SERVICES} and {MAX_SERVICES}, got {}. The estate needs \
                     every tier and its virtual dependencies.",
                    self.services
                ),
            ));
        }
        if self.pods_per_service == 0 || self.pods_per_service > MAX_PODS_PER_SERVICE {
            return Err(invalid(
                "pods_per_service",
                format!(
                    "must be between 1 and {MAX_PODS_PER_SERVICE}, got {}",
                    self.pods_per_service
                ),
            ));
        }
        if self.tenants.is_empty() {
            return Err(invalid(
                "tenants",
                "is empty. Name at least one tenant, e.g. `[default]`.".to_owned(),
            ));
        }
        for (i, tenant) in self.tenants.iter().enumerate() {
            if tenant.trim().is_empty() {
                return Err(invalid("tenants", format!("entry {i} is blank")));
            }
            if self.tenants[..i].contains(tenant) {
                return Err(invalid("tenants", format!("names `{tenant}` twice")));
            }
        }
        if self.scrape_interval < Duration::from_millis(1)
            || self.scrape_interval > MAX_SCRAPE_INTERVAL
        {
            return Err(invalid(
                "scrape_interval",
                format!("must be between 1ms and 1h, got {:?}", self.scrape_interval),
            ));
        }
        if let Some(start) = self.start {
            match start.timestamp_nanos_opt() {
                Some(ns) if ns >= 0 => {}
                _ => {
                    return Err(invalid(
                        "start",
                        format!("{start} is outside the range of OTLP timestamps (1970 to 2262)"),
                    ));
                }
            }
        }
        if !self.speed.is_finite() || self.speed <= 0.0 {
            return Err(invalid(
                "speed",
                format!("must be a positive number, got {}", self.speed),
            ));
        }
        if self.duration == Some(Duration::ZERO) {
            return Err(invalid(
                "duration",
                "is zero. Leave it out to run without end.".to_owned(),
            ));
        }
        if self.signals.is_empty() {
            return Err(invalid(
                "signals",
                "is empty. Name at least one signal, e.g. `[metrics]`.".to_owned(),
            ));
        }
        for (i, signal) in self.signals.iter().enumerate() {
            if self.signals[..i].contains(signal) {
                return Err(invalid("signals", format!("names `{}` twice", signal.name())));
            }
        }
        self.disorder.validate()
    }
}

impl Disorder {
    /// Checks the delays and the fraction; part of [`GeneratorConfig::validate`].
    pub fn validate(&self) -> Result<(), GeneratorError> {
        if self.max_delay > MAX_DISORDER_DELAY {
            return Err(invalid(
                "disorder.max_delay",
                format!("must be at most 24h, got {:?}", self.max_delay),
            ));
        }
        if !(0.0..=1.0).contains(&self.late_fraction) {
            return Err(invalid(
                "disorder.late_fraction",
                format!("must be between 0 and 1, got {}", self.late_fraction),
            ));
        }
        if self.late_by > MAX_DISORDER_DELAY {
            return Err(invalid(
                "disorder.late_by",
                format!("must be at most 24h, got {:?}", self.late_by),
            ));
        }
        if self.late_fraction > 0.0 && self.late_by.is_zero() {
            return Err(invalid(
                "disorder.late_by",
                "is zero while late_fraction is positive. Late messages need a delay.".to_owned(),
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: String) -> GeneratorError {
    GeneratorError::InvalidConfig { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(cfg: &GeneratorConfig) -> &'static str {
        match cfg.validate() {
            Err(GeneratorError::InvalidConfig { field, .. }) => field,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let cfg = GeneratorConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.seed, 42);
        assert_eq!(cfg.services, 12);
        assert_eq!(cfg.pods_per_service, 3);
        assert_eq!(cfg.tenants, vec!["default".to_owned()]);
        assert_eq!(cfg.scrape_interval, Duration::from_secs(10));
        assert_eq!(cfg.pace, Pace::Realtime);
        assert_eq!(cfg.disorder.late_by, Duration::from_secs(180));
        assert_eq!(cfg.signals, GeneratedSignal::ALL);
    }

    #[test]
    fn parses_humantime_and_defaults() {
        let cfg: GeneratorConfig = serde_json::from_str(
            r#"{"seed": 7, "scrape_interval": "15s", "pace": "fast", "duration": "1h",
                "start": "2026-03-02T00:00:00Z", "disorder": {"max_delay": "20s", "late_fraction": 0.01}}"#,
        )
        .unwrap();
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.services, 12);
        assert_eq!(cfg.scrape_interval, Duration::from_secs(15));
        assert_eq!(cfg.pace, Pace::Fast);
        assert_eq!(cfg.duration, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.disorder.max_delay, Duration::from_secs(20));
        assert_eq!(cfg.disorder.late_by, Duration::from_secs(180));
        assert_eq!(cfg.start.map(|s| s.timestamp()), Some(1_772_409_600));
        cfg.validate().unwrap();
        let empty: GeneratorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, GeneratorConfig::default());
        let spans: GeneratorConfig = serde_json::from_str(r#"{"signals": ["spans"]}"#).unwrap();
        assert_eq!(spans.signals, vec![GeneratedSignal::Spans]);
        let k8s: GeneratorConfig = serde_json::from_str(r#"{"signals": ["k8s"]}"#).unwrap();
        assert_eq!(k8s.signals, vec![GeneratedSignal::K8s]);
        assert!(serde_json::from_str::<GeneratorConfig>(r#"{"signals": ["traces"]}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<GeneratorConfig>(r#"{"sevices": 12}"#).is_err());
        assert!(serde_json::from_str::<GeneratorConfig>(r#"{"disorder": {"late": 0.1}}"#).is_err());
    }

    #[test]
    fn validate_refuses_bad_values() {
        let ok = GeneratorConfig::default;
        assert_eq!(
            refused(&GeneratorConfig {
                services: 9,
                ..ok()
            }),
            "services"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                pods_per_service: 0,
                ..ok()
            }),
            "pods_per_service"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                tenants: vec![],
                ..ok()
            }),
            "tenants"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                tenants: vec![" ".into()],
                ..ok()
            }),
            "tenants"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                tenants: vec!["a".into(), "a".into()],
                ..ok()
            }),
            "tenants"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                scrape_interval: Duration::ZERO,
                ..ok()
            }),
            "scrape_interval"
        );
        assert_eq!(refused(&GeneratorConfig { speed: 0.0, ..ok() }), "speed");
        assert_eq!(
            refused(&GeneratorConfig {
                speed: -2.0,
                ..ok()
            }),
            "speed"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                speed: f64::NAN,
                ..ok()
            }),
            "speed"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                duration: Some(Duration::ZERO),
                ..ok()
            }),
            "duration"
        );
        let before_epoch = DateTime::parse_from_rfc3339("1969-12-31T23:59:59Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            refused(&GeneratorConfig {
                start: Some(before_epoch),
                ..ok()
            }),
            "start"
        );
        let late = |late_fraction, late_by| GeneratorConfig {
            disorder: Disorder {
                late_fraction,
                late_by,
                ..Disorder::default()
            },
            ..ok()
        };
        assert_eq!(
            refused(&late(1.5, Duration::from_secs(180))),
            "disorder.late_fraction"
        );
        assert_eq!(
            refused(&late(-0.1, Duration::from_secs(180))),
            "disorder.late_fraction"
        );
        assert_eq!(refused(&late(0.1, Duration::ZERO)), "disorder.late_by");
        let slow = GeneratorConfig {
            disorder: Disorder {
                max_delay: Duration::from_secs(90_000),
                ..Disorder::default()
            },
            ..ok()
        };
        assert_eq!(refused(&slow), "disorder.max_delay");
        assert_eq!(
            refused(&GeneratorConfig {
                signals: vec![],
                ..ok()
            }),
            "signals"
        );
        assert_eq!(
            refused(&GeneratorConfig {
                signals: vec![GeneratedSignal::Spans, GeneratedSignal::Spans],
                ..ok()
            }),
            "signals"
        );
    }
}
