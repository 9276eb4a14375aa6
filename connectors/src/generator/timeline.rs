//! The timeline: what happens to the estate, as data.
//!
//! A [`Timeline`] is a list of [`Incident`]s at offsets from the generator's start. Every
//! signal reads it: metrics and spans through the [`Conditions`](super::Conditions) it changes
//! (a faulty revision is slower, fails more, burns CPU and leaks memory), Kubernetes watch
//! events as the changes themselves, logs as the error templates a faulty revision brings.
//!
//! [`Timeline::build`] writes the demo's story: a routine deploy two minutes in, a bad deploy of
//! a backend at five minutes, another routine deploy at twelve, and the bad one rolled back at
//! thirty. Each deploy replaces the service's pods (new ReplicaSet, new pod names).

use std::time::Duration;

use rand::Rng;
use rand::seq::IndexedRandom;

use super::estate::{Estate, Tier, pod_names};
use super::noise;

/// Offset of the routine deploy before the incident.
const ROUTINE_DEPLOY_AT: Duration = Duration::from_secs(2 * 60);
/// Offset of the bad deploy.
const BAD_DEPLOY_AT: Duration = Duration::from_secs(5 * 60);
/// Offset of the routine deploy during the incident (a red herring for correlation).
const SECOND_ROUTINE_DEPLOY_AT: Duration = Duration::from_secs(12 * 60);
/// Offset of the rollback of the bad deploy.
const ROLLBACK_AT: Duration = Duration::from_secs(30 * 60);

/// What a faulty revision does to its service while it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Multiplies the service's latency (its callers feel it through their calls).
    pub latency_factor: f64,
    /// Added to the service's 5xx rate.
    pub error_rate: f64,
    /// Added to each pod's CPU utilization.
    pub cpu: f64,
    /// Memory each pod gains per minute the revision runs, as a fraction of its resting size.
    pub memory_leak_per_minute: f64,
}

/// A rollout of a new revision of a service's Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Deploy {
    /// Version of the new revision (its image tag).
    pub version: String,
    /// Pods of the new revision, replacing the previous ones.
    pub pods: Vec<String>,
    /// What the revision breaks, if anything.
    pub fault: Option<Fault>,
    /// True when the rollout goes back to an earlier version.
    pub rollback: bool,
}

/// A change to the estate.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new revision of a Deployment.
    Deploy(Deploy),
}

/// One change at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// Event time of the change, as an offset from the generator's start.
    pub at: Duration,
    /// The service changed, by index into [`Estate::services`].
    pub service: usize,
    /// What changed.
    pub change: Change,
}

/// The incidents of a run, ordered by time.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// Incidents in time order.
    pub incidents: Vec<Incident>,
}

/// The revision of a service running at some moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Revision<'a> {
    /// 0 for the revision running at the start, else 1 + the index of the deploy in
    /// [`Timeline::incidents`].
    pub id: usize,
    /// Its version.
    pub version: &'a str,
    /// Its pods.
    pub pods: &'a [String],
    /// Its fault, and since when it has been running.
    pub fault: Option<(&'a Fault, Duration)>,
}

impl Timeline {
    /// The demo story for an estate and seed (see the module documentation). The bad deploy hits
    /// a backend or data service that other services call; the routine deploys hit two others.
    pub fn build(seed: u64, estate: &Estate) -> Timeline {
        let mut rng = noise::rng(seed, &[0x7131_E11E]);
        let called: Vec<usize> = (0..estate.services.len())
            .filter(|&s| matches!(estate.services[s].tier, Tier::Backend | Tier::Data))
            .filter(|&s| {
                estate
                    .edges
                    .iter()
                    .any(|e| e.dst == super::Target::Service(s))
            })
            .collect();
        let Some(&victim) = called.choose(&mut rng) else {
            return Timeline {
                incidents: Vec::new(),
            };
        };
        let others: Vec<usize> = (0..estate.services.len())
            .filter(|&s| s != victim)
            .collect();
        let routine: Vec<usize> = others.choose_multiple(&mut rng, 2).copied().collect();

        let mut incidents = Vec::new();
        let deploy = |incidents: &mut Vec<Incident>,
                      at: Duration,
                      service: usize,
                      version: String,
                      fault: Option<Fault>,
                      rollback: bool| {
            let revision = incidents.len() as u64 + 1;
            let pods = pod_names(
                seed,
                &estate.services[service].name,
                revision,
                estate.services[service].pods.len(),
            );
            incidents.push(Incident {
                at,
                service,
                change: Change::Deploy(Deploy {
                    version,
                    pods,
                    fault,
                    rollback,
                }),
            });
        };
        let bump_patch = |v: &str| bump(v, 2);
        if let Some(&s) = routine.first() {
            deploy(
                &mut incidents,
                ROUTINE_DEPLOY_AT,
                s,
                bump_patch(&estate.services[s].version),
                None,
                false,
            );
        }
        let victim_version = estate.services[victim].version.clone();
        let fault = Fault {
            latency_factor: rng.random_range(2.5..4.0),
            error_rate: rng.random_range(0.06..0.15),
            cpu: rng.random_range(0.15..0.3),
            memory_leak_per_minute: rng.random_range(0.01..0.03),
        };
        deploy(
            &mut incidents,
            BAD_DEPLOY_AT,
            victim,
            bump(&victim_version, 1),
            Some(fault),
            false,
        );
        if let Some(&s) = routine.get(1) {
            deploy(
                &mut incidents,
                SECOND_ROUTINE_DEPLOY_AT,
                s,
                bump_patch(&estate.services[s].version),
                None,
                false,
            );
        }
        deploy(
            &mut incidents,
            ROLLBACK_AT,
            victim,
            victim_version,
            None,
            true,
        );
        Timeline { incidents }
    }

    /// The revision of service `service` running at `offset` after the start.
    pub fn revision_at<'a>(
        &'a self,
        estate: &'a Estate,
        service: usize,
        offset: Duration,
    ) -> Revision<'a> {
        let svc = &estate.services[service];
        let mut rev = Revision {
            id: 0,
            version: &svc.version,
            pods: &svc.pods,
            fault: None,
        };
        for (i, inc) in self.incidents.iter().enumerate() {
            if inc.at > offset {
                break;
            }
            if inc.service != service {
                continue;
            }
            match &inc.change {
                Change::Deploy(d) => {
                    rev = Revision {
                        id: i + 1,
                        version: &d.version,
                        pods: &d.pods,
                        fault: d.fault.as_ref().map(|f| (f, offset - inc.at)),
                    };
                }
            }
        }
        rev
    }
}

/// Bumps part `part` (0 major, 1 minor, 2 patch) of a dotted version and zeroes the ones after.
fn bump(version: &str, part: usize) -> String {
    let mut parts: Vec<u64> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts[part] += 1;
    for p in &mut parts[part + 1..] {
        *p = 0;
    }
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_has_a_bad_deploy_and_its_rollback() {
        let estate = Estate::build(42, 12, 3);
        let t = Timeline::build(42, &estate);
        assert_eq!(t.incidents.len(), 4);
        assert!(t.incidents.windows(2).all(|w| w[0].at <= w[1].at));
        let bad: Vec<&Incident> = t
            .incidents
            .iter()
            .filter(|i| matches!(&i.change, Change::Deploy(d) if d.fault.is_some()))
            .collect();
        assert_eq!(bad.len(), 1);
        let victim = bad[0].service;
        let before = t.revision_at(&estate, victim, Duration::from_secs(60));
        let during = t.revision_at(&estate, victim, Duration::from_secs(10 * 60));
        let after = t.revision_at(&estate, victim, Duration::from_secs(40 * 60));
        assert_eq!(before.id, 0);
        assert!(before.fault.is_none());
        assert_eq!(
            during.fault.map(|(_, since)| since),
            Some(Duration::from_secs(5 * 60))
        );
        assert_ne!(during.version, before.version);
        assert_ne!(during.pods, before.pods);
        assert!(after.fault.is_none());
        assert_eq!(after.version, before.version);
        assert_ne!(after.pods, before.pods, "a rollback starts new pods");
    }

    #[test]
    fn bump_versions() {
        assert_eq!(bump("1.14.2", 1), "1.15.0");
        assert_eq!(bump("1.14.2", 2), "1.14.3");
        assert_eq!(bump("7", 2), "7.0.1");
    }
}
