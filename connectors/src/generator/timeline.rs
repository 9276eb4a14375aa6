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
//!
//! Around them, routine changes that do nothing, each on its own service, never the bad
//! deploy's and never one a deploy touches: a scale-up at three minutes ([`Change::Scale`]), a
//! ConfigMap edit at eight ([`Change::ConfigEdit`]) and a Secret rotation at twenty
//! ([`Change::SecretRotation`]). Only Kubernetes watch events show them: they leave the
//! [`Revision`] and so the conditions, metrics, spans and logs alone (the added replica is a pod
//! of the Kubernetes objects only).

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
/// Offset of the scale-up (a routine change that does nothing).
const SCALE_AT: Duration = Duration::from_secs(3 * 60);
/// Offset of the ConfigMap edit (a routine change that does nothing).
const CONFIG_EDIT_AT: Duration = Duration::from_secs(8 * 60);
/// Offset of the Secret rotation (a routine change that does nothing).
const SECRET_ROTATION_AT: Duration = Duration::from_secs(20 * 60);

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

/// More replicas of a Deployment, from the same ReplicaSet.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// `spec.replicas` after the change.
    pub replicas: usize,
    /// Pods the ReplicaSet adds (their names share the running revision's template hash).
    pub added: Vec<String>,
}

/// An edit of a service's ConfigMap `<service>-config`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigEdit {
    /// Keys whose values change, with their new values.
    pub changed: Vec<(String, String)>,
    /// Keys added, with their values.
    pub added: Vec<(String, String)>,
}

/// A rotation of a service's Secret `<service>-credentials`.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretRotation {
    /// Keys whose values change, with their new (plain, not base64) values.
    pub rotated: Vec<(String, String)>,
}

/// A change to the estate.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new revision of a Deployment.
    Deploy(Deploy),
    /// A scale-up of a Deployment (no new revision).
    Scale(Scale),
    /// An edit of a ConfigMap the pods do not reload (nothing happens).
    ConfigEdit(ConfigEdit),
    /// A rotation of a Secret the pods do not reload (nothing happens).
    SecretRotation(SecretRotation),
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
    /// [`Timeline::incidents`] (routine changes have indices too).
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
    /// a backend or data service that other services call; the routine deploys hit two others,
    /// the scale-up, the ConfigMap edit and the Secret rotation three more.
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
        // Deploys are numbered in the order they are written, which names their pods.
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

        // Routine changes that do nothing, on services no deploy touches. Drawn last, so the
        // story above stays what it was before they existed.
        let untouched: Vec<usize> = others
            .iter()
            .copied()
            .filter(|s| !routine.contains(s))
            .collect();
        let quiet: Vec<usize> = untouched.choose_multiple(&mut rng, 3).copied().collect();
        if let Some(&s) = quiet.first() {
            let svc = &estate.services[s];
            let replicas = svc.pods.len() + 1;
            let added = pod_names(seed, &svc.name, 0, replicas).split_off(svc.pods.len());
            incidents.push(Incident {
                at: SCALE_AT,
                service: s,
                change: Change::Scale(Scale { replicas, added }),
            });
        }
        if let Some(&s) = quiet.get(1) {
            incidents.push(Incident {
                at: CONFIG_EDIT_AT,
                service: s,
                change: Change::ConfigEdit(ConfigEdit {
                    changed: vec![(
                        super::k8s::CONFIG_EDITED_KEY.to_owned(),
                        super::k8s::CONFIG_EDITED_VALUE.to_owned(),
                    )],
                    added: vec![(
                        super::k8s::CONFIG_ADDED_KEY.to_owned(),
                        super::k8s::CONFIG_ADDED_VALUE.to_owned(),
                    )],
                }),
            });
        }
        if let Some(&s) = quiet.get(2) {
            let key = super::k8s::SECRET_ROTATED_KEY;
            incidents.push(Incident {
                at: SECRET_ROTATION_AT,
                service: s,
                change: Change::SecretRotation(SecretRotation {
                    rotated: vec![(
                        key.to_owned(),
                        super::k8s::secret_value(seed, &estate.services[s].name, key, 1),
                    )],
                }),
            });
        }
        // In time order (stable: the deploys keep their order).
        incidents.sort_by_key(|i| i.at);
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
                // Nothing the service runs changes.
                Change::Scale(_) | Change::ConfigEdit(_) | Change::SecretRotation(_) => {}
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
        assert_eq!(t.incidents.len(), 7);
        assert!(t.incidents.windows(2).all(|w| w[0].at <= w[1].at));
        let deploys = t
            .incidents
            .iter()
            .filter(|i| matches!(i.change, Change::Deploy(_)))
            .count();
        assert_eq!(deploys, 4);
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
    fn routine_changes_touch_services_no_deploy_touches() {
        for (seed, size) in [(42, 12), (7, 10), (1, 40)] {
            let estate = Estate::build(seed, size, 2);
            let t = Timeline::build(seed, &estate);
            let deployed: Vec<usize> = t
                .incidents
                .iter()
                .filter(|i| matches!(i.change, Change::Deploy(_)))
                .map(|i| i.service)
                .collect();
            let routine: Vec<&Incident> = t
                .incidents
                .iter()
                .filter(|i| !matches!(i.change, Change::Deploy(_)))
                .collect();
            assert_eq!(routine.len(), 3);
            let mut services: Vec<usize> = routine.iter().map(|i| i.service).collect();
            assert!(services.iter().all(|s| !deployed.contains(s)));
            services.dedup();
            assert_eq!(services.len(), 3, "one service each");
            let offsets: Vec<u64> = routine.iter().map(|i| i.at.as_secs()).collect();
            assert_eq!(offsets, [180, 480, 1200]);
            for inc in routine {
                // The services keep running what they ran.
                for at in [inc.at, inc.at + Duration::from_secs(60)] {
                    let rev = t.revision_at(&estate, inc.service, at);
                    assert_eq!(rev.id, 0);
                    assert_eq!(rev.pods, estate.services[inc.service].pods.as_slice());
                }
                if let Change::Scale(scale) = &inc.change {
                    let pods = &estate.services[inc.service].pods;
                    assert_eq!(scale.replicas, pods.len() + 1);
                    assert_eq!(scale.added.len(), 1);
                    assert!(!pods.contains(&scale.added[0]));
                }
            }
        }
    }

    #[test]
    fn bump_versions() {
        assert_eq!(bump("1.14.2", 1), "1.15.0");
        assert_eq!(bump("1.14.2", 2), "1.14.3");
        assert_eq!(bump("7", 2), "7.0.1");
    }
}
