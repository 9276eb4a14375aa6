//! The estate: services, their pods and routes, and the call graph between them, as plain data.
//!
//! [`Estate::build`] makes a realistic shop: an edge gateway, a web frontend, backends and
//! data services spread over a few namespaces, calling each other in a DAG from the edge tier
//! inward, with PostgreSQL, Redis and Elasticsearch databases, a Kafka queue and external HTTP
//! APIs as virtual dependencies. Well-known names come first; past the catalog, services are
//! numbered copies of backends (`cart-2`) with the same routes and dependencies.
//!
//! Every signal reads the same estate: metrics per pod, spans along the edges, logs per
//! service, Kubernetes objects per service and pod.

use std::collections::{HashMap, HashSet};

use rand::Rng;
use rand::seq::IndexedRandom;

use super::noise;

/// A service's place in the call graph: calls go from lower tiers to higher ones (and within a
/// tier from earlier services to later ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Takes the users' traffic (the API gateway).
    Edge,
    /// Renders pages and aggregates backends for them.
    Frontend,
    /// Business logic.
    Backend,
    /// Owns data: sits in front of databases.
    Data,
}

/// One HTTP route a service serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// Route template, as written to `http.route` (`/cart/{user_id}`).
    pub path: String,
    /// Share of the service's requests that take this route; a service's shares add up to 1.
    pub share: f64,
    /// Latency of this route relative to the service's median.
    pub latency_factor: f64,
    /// The 4xx status this route answers bad requests with (404, 400, 401, 409).
    pub client_error_status: u16,
    /// Fraction of this route's requests answered with `client_error_status`.
    pub client_error_rate: f64,
}

/// One service (a Kubernetes Deployment).
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// `service.name`, also the Deployment's name.
    pub name: String,
    /// `service.namespace`, also the Kubernetes namespace.
    pub namespace: String,
    /// Place in the call graph.
    pub tier: Tier,
    /// Version running at the start (`1.14.2`); [`Timeline`](super::Timeline) deploys change it.
    pub version: String,
    /// Pod names at the start (`checkout-6d8f9b7c4-x2k4p`); a deploy replaces them.
    pub pods: Vec<String>,
    /// Routes served, with their shares of the traffic.
    pub routes: Vec<Route>,
    /// Requests per second over all pods at the daily peak.
    pub base_rps: f64,
    /// Median time spent in the service itself, without its downstream calls, in milliseconds.
    pub base_latency_ms: f64,
    /// Fraction of requests failing with a 5xx on a quiet day, before errors of dependencies.
    pub error_rate: f64,
    /// CPU utilization of one pod (0..1) at the daily peak.
    pub cpu_at_peak: f64,
    /// Resident memory of one pod at rest, in bytes.
    pub memory_bytes: u64,
}

/// Where a call goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Another service of the estate, by index into [`Estate::services`].
    Service(usize),
    /// A database (`db.system`, `db.name`), a virtual node.
    Database {
        /// `postgresql`, `redis`, `elasticsearch`.
        system: String,
        /// Database name.
        name: String,
    },
    /// A message queue topic (`messaging.system`, destination), a virtual node.
    Queue {
        /// `kafka`.
        system: String,
        /// Topic name.
        name: String,
    },
    /// An HTTP API outside the estate (`server.address`), a virtual node.
    External {
        /// Host name.
        host: String,
    },
}

impl Target {
    /// Median latency of a call to a virtual node in milliseconds; `None` for services, whose
    /// latency comes from their own state.
    pub fn base_latency_ms(&self) -> Option<f64> {
        match self {
            Target::Service(_) => None,
            Target::Database { system, .. } => Some(match system.as_str() {
                "redis" => 0.6,
                "elasticsearch" => 12.0,
                _ => 3.5,
            }),
            Target::Queue { .. } => Some(1.8),
            Target::External { .. } => Some(140.0),
        }
    }
}

/// A dependency: service `src` calls `dst` while serving its requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Caller, by index into [`Estate::services`].
    pub src: usize,
    /// Callee.
    pub dst: Target,
    /// Calls made per request `src` serves (on average; may be below 1).
    pub calls_per_request: f64,
}

/// The whole estate: services and the call graph, a DAG from the edge tier inward.
#[derive(Clone, Debug, PartialEq)]
pub struct Estate {
    /// The services; indices are stable and used by [`Edge`] and [`Target::Service`].
    pub services: Vec<Service>,
    /// The call graph, ordered by the caller's place in `call_order`, so every edge comes
    /// after the edges into its caller.
    pub edges: Vec<Edge>,
    /// Service indices in call order: every caller before its callees.
    pub call_order: Vec<usize>,
}

/// A well-known service: its place, its routes and what it calls.
struct Blueprint {
    name: &'static str,
    namespace: &'static str,
    tier: Tier,
    /// Median self time, ms.
    self_ms: f64,
    /// Resident memory at rest, MiB.
    memory_mib: u64,
    /// (method, route, share, latency factor, client error status)
    routes: &'static [(&'static str, &'static str, f64, f64, u16)],
    /// (callee, calls per request)
    calls: &'static [(Callee, f64)],
}

/// A callee as the catalog names it.
#[derive(Clone, Copy)]
enum Callee {
    Service(&'static str),
    Database(&'static str, &'static str),
    Queue(&'static str, &'static str),
    External(&'static str),
}

use Callee::{Database as Db, External as Ext, Queue as Q, Service as Svc};

/// The catalog, in the order services are added. The first ten hold every tier, a PostgreSQL
/// database, a Kafka topic and an external API, so the smallest estate has them all.
const CATALOG: &[Blueprint] = &[
    Blueprint {
        name: "api-gateway",
        namespace: "platform",
        tier: Tier::Edge,
        self_ms: 1.5,
        memory_mib: 192,
        routes: &[
            ("GET", "/api/v1/*", 0.7, 1.0, 404),
            ("POST", "/api/v1/*", 0.3, 1.3, 400),
        ],
        calls: &[
            (Svc("frontend"), 1.0),
            (Svc("auth"), 0.6),
            (Svc("users"), 0.05),
        ],
    },
    Blueprint {
        name: "frontend",
        namespace: "shop",
        tier: Tier::Frontend,
        self_ms: 6.0,
        memory_mib: 320,
        routes: &[
            ("GET", "/", 0.35, 1.0, 404),
            ("GET", "/product/{id}", 0.4, 1.1, 404),
            ("GET", "/cart", 0.15, 0.9, 404),
            ("POST", "/cart/checkout", 0.1, 1.8, 400),
        ],
        calls: &[
            (Svc("catalog"), 1.2),
            (Svc("cart"), 0.5),
            (Svc("recommendations"), 0.4),
            (Svc("search"), 0.3),
            (Svc("checkout"), 0.1),
            (Svc("currency"), 0.8),
            (Svc("ads"), 0.3),
            (Svc("reviews"), 0.3),
        ],
    },
    Blueprint {
        name: "checkout",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 8.0,
        memory_mib: 384,
        routes: &[
            ("POST", "/checkout", 0.8, 1.1, 400),
            ("GET", "/checkout/{order_id}/status", 0.2, 0.4, 404),
        ],
        calls: &[
            (Svc("cart"), 1.0),
            (Svc("payments"), 0.8),
            (Svc("inventory"), 1.0),
            (Svc("shipping"), 0.8),
            (Svc("orders"), 1.0),
            (Svc("pricing"), 1.0),
            (Svc("currency"), 1.0),
            (Q("kafka", "order-events"), 1.0),
        ],
    },
    Blueprint {
        name: "cart",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 2.0,
        memory_mib: 256,
        routes: &[
            ("GET", "/cart/{user_id}", 0.6, 0.8, 404),
            ("POST", "/cart/{user_id}/items", 0.3, 1.2, 400),
            ("DELETE", "/cart/{user_id}/items/{item_id}", 0.1, 1.0, 404),
        ],
        calls: &[(Db("redis", "cart"), 2.0), (Svc("pricing"), 0.5)],
    },
    Blueprint {
        name: "catalog",
        namespace: "shop",
        tier: Tier::Data,
        self_ms: 3.0,
        memory_mib: 512,
        routes: &[
            ("GET", "/products", 0.3, 1.4, 400),
            ("GET", "/products/{id}", 0.6, 0.8, 404),
            ("GET", "/categories", 0.1, 0.6, 404),
        ],
        calls: &[(Db("postgresql", "catalog"), 1.5)],
    },
    Blueprint {
        name: "payments",
        namespace: "payments",
        tier: Tier::Backend,
        self_ms: 5.0,
        memory_mib: 448,
        routes: &[
            ("POST", "/payments", 0.85, 1.1, 402),
            ("POST", "/payments/{id}/refund", 0.05, 1.3, 409),
            ("GET", "/payments/{id}", 0.1, 0.3, 404),
        ],
        calls: &[
            (Ext("api.stripe.com"), 0.9),
            (Svc("fraud-detection"), 1.0),
            (Svc("ledger"), 1.0),
            (Db("postgresql", "payments"), 2.0),
        ],
    },
    Blueprint {
        name: "inventory",
        namespace: "shop",
        tier: Tier::Data,
        self_ms: 2.5,
        memory_mib: 320,
        routes: &[
            ("GET", "/stock/{sku}", 0.7, 0.8, 404),
            ("POST", "/reservations", 0.3, 1.5, 409),
        ],
        calls: &[(Db("postgresql", "inventory"), 2.0)],
    },
    Blueprint {
        name: "users",
        namespace: "identity",
        tier: Tier::Data,
        self_ms: 2.0,
        memory_mib: 256,
        routes: &[
            ("GET", "/users/{id}", 0.85, 0.9, 404),
            ("PUT", "/users/{id}", 0.15, 1.6, 400),
        ],
        calls: &[(Db("postgresql", "users"), 1.0)],
    },
    Blueprint {
        name: "auth",
        namespace: "identity",
        tier: Tier::Backend,
        self_ms: 1.5,
        memory_mib: 192,
        routes: &[
            ("POST", "/sessions/validate", 0.9, 0.8, 401),
            ("POST", "/oauth/token", 0.1, 2.5, 401),
        ],
        calls: &[(Db("redis", "sessions"), 1.0), (Svc("users"), 0.15)],
    },
    Blueprint {
        name: "search",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 4.0,
        memory_mib: 640,
        routes: &[
            ("GET", "/search", 0.9, 1.0, 400),
            ("GET", "/search/suggest", 0.1, 0.4, 400),
        ],
        calls: &[
            (Db("elasticsearch", "products"), 1.0),
            (Svc("catalog"), 0.3),
        ],
    },
    Blueprint {
        name: "recommendations",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 9.0,
        memory_mib: 1024,
        routes: &[("GET", "/recommendations/{user_id}", 1.0, 1.0, 404)],
        calls: &[(Svc("catalog"), 1.0), (Db("redis", "recommendations"), 1.0)],
    },
    Blueprint {
        name: "shipping",
        namespace: "fulfillment",
        tier: Tier::Backend,
        self_ms: 3.0,
        memory_mib: 256,
        routes: &[
            ("POST", "/quotes", 0.6, 0.8, 400),
            ("POST", "/shipments", 0.4, 1.4, 400),
        ],
        calls: &[
            (Ext("api.shipengine.com"), 0.5),
            (Db("postgresql", "shipping"), 1.0),
        ],
    },
    Blueprint {
        name: "notifications",
        namespace: "platform",
        tier: Tier::Backend,
        self_ms: 2.0,
        memory_mib: 192,
        routes: &[("POST", "/notify", 1.0, 1.0, 400)],
        calls: &[(Svc("email"), 0.7), (Ext("fcm.googleapis.com"), 0.3)],
    },
    Blueprint {
        name: "orders",
        namespace: "fulfillment",
        tier: Tier::Data,
        self_ms: 3.0,
        memory_mib: 384,
        routes: &[
            ("POST", "/orders", 0.5, 1.3, 400),
            ("GET", "/orders/{id}", 0.4, 0.7, 404),
            ("GET", "/orders", 0.1, 1.8, 400),
        ],
        calls: &[(Db("postgresql", "orders"), 2.0)],
    },
    Blueprint {
        name: "pricing",
        namespace: "shop",
        tier: Tier::Data,
        self_ms: 1.0,
        memory_mib: 192,
        routes: &[("GET", "/prices/{sku}", 1.0, 1.0, 404)],
        calls: &[(Db("redis", "prices"), 1.0)],
    },
    Blueprint {
        name: "reviews",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 3.0,
        memory_mib: 256,
        routes: &[
            ("GET", "/reviews/{product_id}", 0.9, 1.0, 404),
            ("POST", "/reviews", 0.1, 1.5, 400),
        ],
        calls: &[(Db("postgresql", "reviews"), 1.0), (Svc("users"), 0.2)],
    },
    Blueprint {
        name: "currency",
        namespace: "shop",
        tier: Tier::Data,
        self_ms: 0.8,
        memory_mib: 128,
        routes: &[("GET", "/convert", 1.0, 1.0, 400)],
        calls: &[(Ext("api.exchangerate.host"), 0.01)],
    },
    Blueprint {
        name: "fraud-detection",
        namespace: "payments",
        tier: Tier::Backend,
        self_ms: 12.0,
        memory_mib: 1536,
        routes: &[("POST", "/score", 1.0, 1.0, 400)],
        calls: &[(Db("redis", "fraud-features"), 3.0)],
    },
    Blueprint {
        name: "ledger",
        namespace: "payments",
        tier: Tier::Data,
        self_ms: 4.0,
        memory_mib: 384,
        routes: &[
            ("POST", "/entries", 0.9, 1.0, 409),
            ("GET", "/balances/{account}", 0.1, 0.8, 404),
        ],
        calls: &[
            (Db("postgresql", "ledger"), 2.0),
            (Q("kafka", "ledger-entries"), 1.0),
        ],
    },
    Blueprint {
        name: "email",
        namespace: "platform",
        tier: Tier::Backend,
        self_ms: 2.0,
        memory_mib: 192,
        routes: &[("POST", "/send", 1.0, 1.0, 400)],
        calls: &[(Ext("api.sendgrid.com"), 1.0)],
    },
    Blueprint {
        name: "ads",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 5.0,
        memory_mib: 512,
        routes: &[("GET", "/ads", 1.0, 1.0, 400)],
        calls: &[(Db("redis", "ads"), 1.0), (Svc("feature-flags"), 1.0)],
    },
    Blueprint {
        name: "feature-flags",
        namespace: "platform",
        tier: Tier::Data,
        self_ms: 0.5,
        memory_mib: 128,
        routes: &[("GET", "/flags", 1.0, 1.0, 404)],
        calls: &[(Db("postgresql", "flags"), 0.02)],
    },
    Blueprint {
        name: "loyalty",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 3.0,
        memory_mib: 256,
        routes: &[
            ("GET", "/points/{user_id}", 0.8, 1.0, 404),
            ("POST", "/points/{user_id}", 0.2, 1.4, 400),
        ],
        calls: &[(Svc("users"), 0.5), (Db("postgresql", "loyalty"), 1.0)],
    },
    Blueprint {
        name: "media",
        namespace: "shop",
        tier: Tier::Backend,
        self_ms: 6.0,
        memory_mib: 768,
        routes: &[("GET", "/images/{id}", 1.0, 1.0, 404)],
        calls: &[(Ext("storage.googleapis.com"), 0.6)],
    },
];

/// Characters Kubernetes uses in generated names (no vowels, no look-alikes).
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Builds the name of a pod of a Deployment revision: `<deployment>-<template hash>-<suffix>`,
/// as the ReplicaSet controller names them. `revision` tells revisions of the same service
/// apart (0 is the one running at the start).
pub(crate) fn pod_names(seed: u64, service: &str, revision: u64, count: usize) -> Vec<String> {
    let service_key = noise::hash(0, &service.bytes().map(u64::from).collect::<Vec<_>>());
    let template_hash = k8s_chars(
        noise::hash(seed, &[noise::tag::POD, service_key, revision]),
        9,
    );
    (0..count as u64)
        .map(|slot| {
            let suffix = k8s_chars(
                noise::hash(seed, &[noise::tag::POD, service_key, revision, slot + 1]),
                5,
            );
            format!("{service}-{template_hash}-{suffix}")
        })
        .collect()
}

fn k8s_chars(mut bits: u64, len: usize) -> String {
    let base = K8S_ALPHABET.len() as u64;
    (0..len)
        .map(|_| {
            let c = K8S_ALPHABET[(bits % base) as usize];
            bits /= base;
            char::from(c)
        })
        .collect()
}

impl Estate {
    /// Builds the estate for a seed: `services` services (at least one per tier once there are
    /// ten or more), `pods_per_service` pods each.
    ///
    /// The seed picks versions, pod names, traffic, latencies, error rates and sizes, and adds
    /// a few extra calls to the catalog's call graph. Every service but the edge gateway has at
    /// least one caller, so the whole graph is reachable from the edge tier.
    pub fn build(seed: u64, services: usize, pods_per_service: usize) -> Estate {
        let mut rng = noise::rng(seed, &[0xE57A7E]);
        // Numbered copies are made of backends and data services only: one gateway, one frontend.
        let copyable: Vec<usize> = (0..CATALOG.len())
            .filter(|&i| matches!(CATALOG[i].tier, Tier::Backend | Tier::Data))
            .collect();
        let mut plan: Vec<(usize, usize)> = Vec::with_capacity(services); // (catalog index, copy number)
        for i in 0..services {
            if i < CATALOG.len() {
                plan.push((i, 1));
            } else {
                let over = i - CATALOG.len();
                plan.push((copyable[over % copyable.len()], over / copyable.len() + 2));
            }
        }

        let mut out: Vec<Service> = plan
            .iter()
            .map(|&(b, copy)| {
                let bp = &CATALOG[b];
                let name = if copy == 1 {
                    bp.name.to_owned()
                } else {
                    format!("{}-{copy}", bp.name)
                };
                let version = format!(
                    "{}.{}.{}",
                    rng.random_range(1..=3u32),
                    rng.random_range(0..=24u32),
                    rng.random_range(0..=9u32)
                );
                let pods = pod_names(seed, &name, 0, pods_per_service);
                let routes = bp
                    .routes
                    .iter()
                    .map(
                        |&(method, path, share, latency_factor, client_error_status)| Route {
                            method: method.to_owned(),
                            path: path.to_owned(),
                            share,
                            latency_factor,
                            client_error_status,
                            client_error_rate: rng.random_range(0.002..0.02),
                        },
                    )
                    .collect();
                Service {
                    name,
                    namespace: bp.namespace.to_owned(),
                    tier: bp.tier,
                    version,
                    pods,
                    routes,
                    base_rps: 0.0,
                    base_latency_ms: bp.self_ms * rng.random_range(0.8..1.25),
                    error_rate: rng.random_range(0.0005..0.004),
                    cpu_at_peak: rng.random_range(0.25..0.6),
                    memory_bytes: (bp.memory_mib as f64 * rng.random_range(0.85..1.2)) as u64
                        * 1024
                        * 1024,
                }
            })
            .collect();

        // Call order: tier first, then catalog position (a copy sits with its original, so the
        // original's calls stay forward calls), then copy number.
        let rank: Vec<(Tier, usize, usize)> = plan
            .iter()
            .map(|&(b, copy)| (CATALOG[b].tier, b, copy))
            .collect();
        let mut call_order: Vec<usize> = (0..services).collect();
        call_order.sort_by_key(|&i| rank[i]);
        let mut position = vec![0; services];
        for (p, &s) in call_order.iter().enumerate() {
            position[s] = p;
        }
        let by_name: HashMap<&str, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();

        let mut edges: Vec<Edge> = Vec::new();
        let mut seen: HashSet<(usize, Target)> = HashSet::new();
        let mut add = |edges: &mut Vec<Edge>, src: usize, dst: Target, cpr: f64| {
            let forward = match dst {
                Target::Service(d) => position[src] < position[d],
                _ => true,
            };
            if forward && seen.insert((src, dst.clone())) {
                edges.push(Edge {
                    src,
                    dst,
                    calls_per_request: cpr,
                });
            }
        };

        // The catalog's calls, for originals and copies alike.
        for (src, &(b, _)) in plan.iter().enumerate() {
            for &(callee, cpr) in CATALOG[b].calls {
                let cpr = cpr * rng.random_range(0.75..1.3);
                let dst = match callee {
                    Callee::Service(name) => match by_name.get(name) {
                        Some(&d) => Target::Service(d),
                        None => continue,
                    },
                    Callee::Database(system, name) => Target::Database {
                        system: system.into(),
                        name: name.into(),
                    },
                    Callee::Queue(system, name) => Target::Queue {
                        system: system.into(),
                        name: name.into(),
                    },
                    Callee::External(host) => Target::External { host: host.into() },
                };
                add(&mut edges, src, dst, cpr);
            }
        }
        // A few calls the seed adds: backends calling services later in call order.
        for _ in 0..1 + services / 6 {
            let from = rng.random_range(0..services - 1);
            let src = call_order[from];
            if out[src].tier == Tier::Backend {
                let dst = call_order[rng.random_range(from + 1..services)];
                add(
                    &mut edges,
                    src,
                    Target::Service(dst),
                    rng.random_range(0.1..0.8),
                );
            }
        }
        // Every service off the edge tier gets a caller: one from its own or the previous tier
        // (they sit just before it in call order), else any earlier one.
        let mut has_caller = vec![false; services];
        for e in &edges {
            if let Target::Service(d) = e.dst {
                has_caller[d] = true;
            }
        }
        for pos in 0..services {
            let dst = call_order[pos];
            let tier = out[dst].tier;
            if tier == Tier::Edge || has_caller[dst] {
                continue;
            }
            let earlier = &call_order[..pos];
            let near_from = earlier.partition_point(|&s| (out[s].tier as u8) + 1 < tier as u8);
            let pick = earlier[near_from..]
                .choose(&mut rng)
                .or_else(|| earlier.choose(&mut rng))
                .copied();
            if let Some(src) = pick {
                add(
                    &mut edges,
                    src,
                    Target::Service(dst),
                    rng.random_range(0.2..1.0),
                );
            }
        }
        // Callers before callees: a stable sort by the caller's place in call order.
        edges.sort_by_key(|e| position[e.src]);

        // Traffic: the edge tier takes the users' requests, every call passes load on. Edges
        // are in call order, so a caller's rate is complete before its calls are counted.
        let peak_rps = rng.random_range(150.0..400.0);
        let roots: Vec<usize> = call_order
            .iter()
            .copied()
            .filter(|&s| out[s].tier == Tier::Edge)
            .collect();
        for &r in &roots {
            out[r].base_rps = peak_rps / roots.len() as f64;
        }
        for e in &edges {
            if let Target::Service(d) = e.dst {
                out[d].base_rps += out[e.src].base_rps * e.calls_per_request;
            }
        }
        Estate {
            services: out,
            edges,
            call_order,
        }
    }

    /// Edges out of service `src` (a scan: for hot loops, index the edges once).
    pub fn calls_from(&self, src: usize) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.src == src)
    }

    /// Total pods over all services.
    pub fn pod_count(&self) -> usize {
        self.services.iter().map(|s| s.pods.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_calls_point_forward() {
        let names: HashSet<&str> = CATALOG.iter().map(|b| b.name).collect();
        assert_eq!(names.len(), CATALOG.len());
        let pos = |n: &str| CATALOG.iter().position(|b| b.name == n).unwrap();
        for (i, bp) in CATALOG.iter().enumerate() {
            let share: f64 = bp.routes.iter().map(|r| r.2).sum();
            assert!(
                (share - 1.0).abs() < 1e-9,
                "{} route shares add up to {share}",
                bp.name
            );
            for (callee, _) in bp.calls {
                if let Callee::Service(n) = callee {
                    let j = pos(n);
                    assert!(
                        (bp.tier, i) < (CATALOG[j].tier, j),
                        "{} -> {n} is not a forward call",
                        bp.name
                    );
                }
            }
        }
    }

    #[test]
    fn pod_names_look_like_replica_set_pods() {
        let pods = pod_names(42, "checkout", 0, 3);
        assert_eq!(pods.len(), 3);
        let hash = pods[0].split('-').nth(1).unwrap().to_owned();
        for p in &pods {
            let parts: Vec<&str> = p.split('-').collect();
            assert_eq!(parts.len(), 3, "{p}");
            assert_eq!(parts[1], hash, "pods of a revision share the template hash");
            assert_eq!(parts[2].len(), 5);
            assert!(parts[2].bytes().all(|c| K8S_ALPHABET.contains(&c)));
        }
        assert_eq!(pods.iter().collect::<HashSet<_>>().len(), 3);
        assert_ne!(
            pod_names(42, "checkout", 1, 1)[0]
                .split('-')
                .nth(1)
                .unwrap(),
            hash
        );
    }
}
