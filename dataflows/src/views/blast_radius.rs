//! `blast_radius`: graph questions on the live call graph, maintained incrementally.
//!
//! Key `tenant, service, direction, affected`; column `hops`. For every service of the active
//! graph ([`call_graph_active`](super::call_graph_active)):
//! - `direction = 'downstream'`: every node it reaches through calls, with the fewest hops (its
//!   k-hop downstream neighbourhood is `hops <= k`);
//! - `direction = 'upstream'`: every node that reaches it, i.e. its transitive callers: the
//!   services a failure of it can affect (its blast radius); `hops <= k` is the k-hop upstream
//!   neighbourhood.
//!
//! Paths are followed up to `max_hops` (default 16). Connection types are merged (an edge is
//! present if any of its kinds is active). A node never lists itself, even on a cycle.
//!
//! The reachability is a differential `iterate` (a breadth-first search from every node at
//! once, with a `min` per pair), so an edge appearing or going idle updates only the pairs whose
//! shortest path it changes; the result is the same for any number of workers.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use differential_dataflow::operators::Iterate;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use super::ViewRow;
use crate::record::EventTime;

/// Which way `affected` lies from `service`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    Downstream,
    Upstream,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Downstream => "downstream",
            Direction::Upstream => "upstream",
        }
    }
}

/// One row of `blast_radius`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlastRadiusRow {
    pub tenant: String,
    pub service: String,
    pub direction: Direction,
    pub affected: String,
    pub hops: i64,
}

/// `(tenant, node)`.
type Node = (String, String);

/// Shortest hop counts from every node along `edges` (`(tenant, src) -> dst`), up to `max_hops`:
/// `((tenant, reached), (origin, hops))`.
fn reach<'s>(edges: VecCollection<'s, u64, (Node, String)>, max_hops: u32) -> VecCollection<'s, u64, (Node, (String, u32))> {
    let start = edges.clone().map(|((tenant, src), dst)| ((tenant, dst), (src, 1u32)));
    start.clone().iterate(|scope, inner| {
        let edges = edges.enter(scope);
        let start = start.enter(scope);
        inner
            .join_map(edges, |(tenant, _node), (origin, hops), next| ((tenant.clone(), next.clone()), (origin.clone(), hops + 1)))
            .filter(move |(_, (_, hops))| *hops <= max_hops)
            .concat(start)
            .map(|((tenant, node), (origin, hops))| ((tenant, node, origin), hops))
            .reduce(|_key, input, output| output.push((*input[0].0, 1isize)))
            .map(|((tenant, node, origin), hops)| ((tenant, node), (origin, hops)))
    })
}

/// The `blast_radius` changes, as `(row, diff)`, from the active edges' changes
/// (`((tenant, src, dst), diff)`, one per connection type).
pub fn blast_radius<'s>(
    edge_changes: StreamVec<'s, u64, ((String, String, String), isize)>,
    max_hops: u32,
) -> StreamVec<'s, u64, (BlastRadiusRow, isize)> {
    let edges = edge_changes
        .unary(Pipeline, "edge_changes", |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else { return };
                    let time = *cap.time();
                    output.session(&cap).give_iterator(data.drain(..).map(move |((t, s, d), diff)| (((t, s), d), time, diff)));
                });
            }
        })
        .as_collection()
        .distinct();
    let reversed = edges.clone().map(|((tenant, src), dst)| ((tenant, dst), src));
    let row = |direction: Direction| {
        move |((tenant, affected), (service, hops)): (Node, (String, u32))| BlastRadiusRow { tenant, service, direction, affected, hops: i64::from(hops) }
    };
    let down = reach(edges, max_hops).map(row(Direction::Downstream));
    let up = reach(reversed, max_hops).map(row(Direction::Upstream));
    down.concat(up).filter(|r| r.service != r.affected).consolidate().inner.map(|(row, _time, diff)| (row, diff))
}

impl ViewRow for BlastRadiusRow {
    const VIEW: &'static str = "blast_radius";
    const KEY_COLUMNS: &'static [&'static str] = &["tenant", "service", "direction", "affected"];
    type Key = (String, String, Direction, String);

    fn key(&self) -> Self::Key {
        (self.tenant.clone(), self.service.clone(), self.direction, self.affected.clone())
    }
    fn window_start(&self) -> Option<EventTime> {
        None
    }
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("direction", DataType::Utf8, false),
            Field::new("affected", DataType::Utf8, false),
            Field::new("hops", DataType::Int64, false),
        ]))
    }
    fn to_batch(rows: &[&Self]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&Self) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            strings(|r| &r.tenant),
            strings(|r| &r.service),
            strings(|r| r.direction.as_str()),
            strings(|r| &r.affected),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.hops))),
        ];
        RecordBatch::try_new(Self::schema(), columns)
    }
}
