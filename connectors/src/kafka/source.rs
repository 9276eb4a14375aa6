//! The Kafka source: assigned partitions, commits with restart metadata.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, Checkpoints};
use super::config::{KafkaSourceConfig, PartitionFilter, StartPosition};
use super::context::LogContext;
use crate::source::{PartitionCommit, PartitionInfo, Poll, RawRecord, Source, SourceError};

/// How long metadata, committed-offset and offset lookups may take at startup and on commit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the source looks for partitions added to its topics while it runs.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);
/// How long startup waits for a topic whose metadata reports a transient error (no leader yet).
const TRANSIENT_METADATA_WAIT: Duration = Duration::from_secs(10);

/// What a commit stores next to the offset, as the commit's metadata string.
///
/// Written as `{"restart":<offset>,"max_ts":<ms or null>}`: where to start re-reading after a
/// restart so that open windows can be rebuilt, and the largest event time seen, which restores
/// the partition's watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitMetadata {
    pub(crate) restart: u64,
    pub(crate) max_ts: Option<i64>,
}

/// A Kafka partition: topic and partition number.
type TopicPartition = (String, i32);

/// Where a newly assigned partition without a usable commit starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

/// One partition of the source's partition table; its index is [`RawRecord::partition`].
struct Assigned {
    topic: String,
    partition: i32,
    info: PartitionInfo,
}

/// Reads Kafka topics: every partition of every configured topic (or the
/// [`PartitionFilter`] share of them), assigned directly, without consumer-group rebalancing
/// (like Flink's Kafka source). The consumer group only stores commits.
///
/// At startup each partition resumes from its commit: reading starts at the commit's `restart`
/// offset and [`PartitionInfo::replay_until`] is the committed offset, so the engine knows which
/// records it processed before. Partitions without a commit (or all of them with
/// `ignore_committed`) start at the configured [`StartPosition`]; partitions added to a topic
/// while the source runs are found within a minute and start at their earliest offset. With a
/// [`checkpoint_topic`](KafkaSourceConfig::checkpoint_topic), every commit is also written there
/// first, and at startup the newer of the group commit and the checkpoint wins.
///
/// Transient broker and network errors are logged and retried by librdkafka; `poll` fails only
/// when reading cannot go on (a topic deleted, authorization refused, a fatal client error).
pub struct KafkaSource {
    name: String,
    consumer: BaseConsumer<LogContext>,
    topics: Vec<String>,
    filter: Option<PartitionFilter>,
    ignore_committed: bool,
    /// The checkpoint topic, when configured.
    checkpoints: Option<Checkpoints>,
    /// Whether the first commit was read back to see if the broker keeps commit metadata.
    metadata_checked: bool,
    /// The partition table: `RawRecord::partition` indexes it; entries are only ever appended.
    table: Vec<Assigned>,
    /// Topic -> Kafka partition number -> index in `table`.
    by_topic: HashMap<String, Vec<Option<u32>>>,
    next_discovery: Instant,
}

impl KafkaSource {
    /// Validates `cfg`, connects, reads the topics' metadata and committed offsets, and assigns
    /// every partition at its starting offset. `name` names the source in logs and errors.
    ///
    /// Fails when the configuration is invalid, when a topic does not exist, or when the brokers
    /// cannot be reached within 30 seconds.
    pub fn new(name: &str, cfg: &KafkaSourceConfig) -> Result<Self, SourceError> {
        cfg.validate()
            .map_err(|e| kafka_error(name, e.to_string()))?;
        let start = match &cfg.start {
            StartPosition::Earliest => Start::Earliest,
            StartPosition::Latest => Start::Latest,
            StartPosition::Timestamp(_) => match cfg.start.timestamp_ms() {
                Ok(Some(ms)) => Start::Timestamp(ms),
                Ok(None) => Start::Earliest,
                Err(e) => return Err(kafka_error(name, e.to_string())),
            },
        };

        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("client.id", format!("observebridge-{name}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // Only reached when a restart offset fell out of retention: re-read what is left.
            .set("auto.offset.reset", "earliest")
            // Statistics carry each partition's high watermark: the source's lag.
            .set("statistics.interval.ms", "5000");
        for (key, value) in &cfg.properties {
            client.set(key, value);
        }
        let consumer: BaseConsumer<LogContext> = client
            .create_with_context(LogContext::new(name))
            .map_err(|e| kafka_error(name, format!("cannot create the consumer: {e}")))?;

        let checkpoints = match &cfg.checkpoint_topic {
            Some(topic) => Some(
                Checkpoints::new(name, &cfg.brokers, &cfg.properties, topic, &cfg.group_id)
                    .map_err(|e| kafka_error(name, e))?,
            ),
            None => None,
        };
        let mut source = Self {
            name: name.to_owned(),
            consumer,
            topics: cfg.topics.clone(),
            filter: cfg.partitions,
            ignore_committed: cfg.ignore_committed,
            checkpoints,
            metadata_checked: false,
            table: Vec::new(),
            by_topic: HashMap::new(),
            next_discovery: Instant::now() + DISCOVERY_INTERVAL,
        };
        let found = source.discover(true)?;
        if found.is_empty() {
            tracing::warn!(
                source = name,
                topics = ?source.topics,
                filter = ?source.filter,
                "kafka source has no partitions to read: the partition filter leaves none"
            );
        }
        source.assign(found, start)?;
        Ok(source)
    }

    /// Partitions of the configured topics (kept by the filter) that are not assigned yet.
    ///
    /// At startup (`startup`), a topic the broker does not know is an error; errors the broker
    /// calls retriable (no leader elected yet) are waited out for a few seconds.
    fn discover(&self, startup: bool) -> Result<Vec<TopicPartition>, SourceError> {
        let mut found = Vec::new();
        for topic in &self.topics {
            let deadline = Instant::now() + TRANSIENT_METADATA_WAIT;
            let mut partitions = loop {
                let metadata = self
                    .consumer
                    .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
                    .map_err(|e| {
                        self.error(format!("cannot fetch the metadata of topic {topic}: {e}"))
                    })?;
                let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
                    return Err(
                        self.error(format!("the broker returned no metadata for topic {topic}"))
                    );
                };
                match entry.error().map(RDKafkaErrorCode::from) {
                    None if entry.partitions().is_empty() => {
                        return Err(self.error(format!("topic {topic} has no partitions")));
                    }
                    None => {
                        break entry
                            .partitions()
                            .iter()
                            .map(|p| p.id())
                            .collect::<Vec<i32>>();
                    }
                    Some(code)
                        if startup
                            && is_transient_metadata_error(code)
                            && Instant::now() < deadline =>
                    {
                        tracing::info!(source = self.name.as_str(), topic = topic.as_str(), error = %code, "waiting for topic metadata");
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    Some(code) => {
                        let hint = if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                            " The source does not create topics; create it first."
                        } else {
                            ""
                        };
                        return Err(
                            self.error(format!("topic {topic} is not readable: {code}.{hint}"))
                        );
                    }
                }
            };
            partitions.sort_unstable();
            let known = self.by_topic.get(topic);
            found.extend(
                partitions
                    .into_iter()
                    .filter(|p| self.filter.is_none_or(|f| f.takes(*p)))
                    .filter(|p| {
                        let index = usize::try_from(*p).ok();
                        !index.is_some_and(|i| {
                            known.and_then(|k| k.get(i)).is_some_and(Option::is_some)
                        })
                    })
                    .map(|p| (topic.clone(), p)),
            );
        }
        Ok(found)
    }

    /// Finds the starting offset of each new partition (its commit, else `start`), appends it to
    /// the partition table and adds it to the consumer's assignment.
    fn assign(&mut self, new: Vec<TopicPartition>, start: Start) -> Result<(), SourceError> {
        if new.is_empty() {
            return Ok(());
        }
        let resume = if self.ignore_committed {
            HashMap::new()
        } else {
            self.resume_points(&new)?
        };

        let mut positions: Vec<(Offset, PartitionInfo)> = Vec::with_capacity(new.len());
        let mut lookups: Vec<usize> = Vec::new();
        for (i, (topic, partition)) in new.iter().enumerate() {
            let name = partition_name(topic, *partition);
            if let Some(point) = resume.get(&(topic.clone(), *partition)) {
                positions.push((
                    Offset::Offset(to_kafka_offset(point.restart)),
                    PartitionInfo {
                        name,
                        replay_until: Some(point.offset),
                        max_event_time: point.max_ts,
                    },
                ));
            } else {
                let offset = match start {
                    Start::Earliest => Offset::Beginning,
                    Start::Latest | Start::Timestamp(_) => {
                        lookups.push(i);
                        Offset::End
                    }
                };
                positions.push((
                    offset,
                    PartitionInfo {
                        name,
                        replay_until: None,
                        max_event_time: None,
                    },
                ));
            }
        }
        if !lookups.is_empty() {
            let wanted = match start {
                Start::Timestamp(ms) => Offset::Offset(ms),
                Start::Earliest | Start::Latest => Offset::End,
            };
            let resolved = self.offsets_for(&new, &lookups, wanted)?;
            // A timestamp after the last message has no offset: start at the end, resolved now so
            // that messages produced from here on are not skipped.
            let at_end: Vec<usize> = lookups
                .iter()
                .copied()
                .filter(|i| !resolved.contains_key(i))
                .collect();
            let ends = if at_end.is_empty() || wanted == Offset::End {
                HashMap::new()
            } else {
                self.offsets_for(&new, &at_end, Offset::End)?
            };
            for i in lookups {
                if let Some(offset) = resolved.get(&i).or_else(|| ends.get(&i)) {
                    positions[i].0 = Offset::Offset(*offset);
                }
            }
        }

        let mut tpl = TopicPartitionList::with_capacity(new.len());
        for ((topic, partition), (offset, _)) in new.iter().zip(&positions) {
            tpl.add_partition_offset(topic, *partition, *offset)
                .map_err(|e| {
                    self.error(format!(
                        "cannot assign {}: {e}",
                        partition_name(topic, *partition)
                    ))
                })?;
        }
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| self.error(format!("cannot assign {} partitions: {e}", new.len())))?;

        for ((topic, partition), (offset, info)) in new.into_iter().zip(positions) {
            let index = u32::try_from(self.table.len())
                .map_err(|_| self.error("more than 2^32 partitions".to_owned()))?;
            tracing::info!(
                source = self.name.as_str(),
                partition = info.name.as_str(),
                index,
                start = ?offset,
                replay_until = ?info.replay_until,
                max_event_time = ?info.max_event_time,
                "kafka partition assigned"
            );
            let slot = usize::try_from(partition)
                .map_err(|_| self.error(format!("negative partition {partition}")))?;
            let slots = self.by_topic.entry(topic.clone()).or_default();
            if slots.len() <= slot {
                slots.resize(slot + 1, None);
            }
            slots[slot] = Some(index);
            self.table.push(Assigned {
                topic,
                partition,
                info,
            });
        }
        Ok(())
    }

    /// Where each of `partitions` that was committed before resumes: the group commit and its
    /// metadata, or the checkpoint when it is newer (or the group commit lacks metadata).
    fn resume_points(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Checkpoint>, SourceError> {
        let committed = self.committed(partitions)?;
        let checkpoints = match &self.checkpoints {
            Some(checkpoints) => checkpoints.read(partitions).map_err(|e| self.error(e))?,
            None => HashMap::new(),
        };
        let mut out = HashMap::new();
        for key in partitions {
            let name = partition_name(&key.0, key.1);
            let group = committed
                .get(key)
                .map(|(offset, metadata)| self.parse_metadata(&name, *offset, metadata));
            let checkpoint = checkpoints.get(key).map(|c| Checkpoint {
                restart: c.restart.min(c.offset),
                ..*c
            });
            let chosen = match (group, checkpoint) {
                (None, None) => continue,
                (Some((group, _)), None) => group,
                (None, Some(checkpoint)) => checkpoint,
                (Some((group, has_metadata)), Some(checkpoint)) => {
                    if checkpoint.offset > group.offset
                        || (checkpoint.offset == group.offset && !has_metadata)
                    {
                        checkpoint
                    } else {
                        if !has_metadata {
                            tracing::warn!(
                                source = self.name.as_str(),
                                partition = name.as_str(),
                                committed = group.offset,
                                checkpoint = checkpoint.offset,
                                "the group commit is newer than the checkpoint and has no metadata; restarting at the committed offset"
                            );
                        }
                        group
                    }
                }
            };
            out.insert(key.clone(), chosen);
        }
        Ok(out)
    }

    /// Committed offsets and their metadata, for the partitions that have one.
    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, (u64, String)>, SourceError> {
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|e| self.error(format!("cannot read the committed offsets: {e}")))?;
        let mut out = HashMap::new();
        for elem in committed.elements() {
            if let Err(e) = elem.error() {
                return Err(self.error(format!(
                    "cannot read the committed offset of {}: {e}",
                    partition_name(elem.topic(), elem.partition())
                )));
            }
            if let Offset::Offset(offset) = elem.offset()
                && let Ok(offset) = u64::try_from(offset)
            {
                out.insert(
                    (elem.topic().to_owned(), elem.partition()),
                    (offset, elem.metadata().to_owned()),
                );
            }
        }
        Ok(out)
    }

    /// Offsets of `wanted` (a timestamp, or [`Offset::End`]) for the partitions `new[i]`, `i` in
    /// `which`; partitions without such an offset are left out.
    fn offsets_for(
        &self,
        new: &[TopicPartition],
        which: &[usize],
        wanted: Offset,
    ) -> Result<HashMap<usize, i64>, SourceError> {
        let mut tpl = TopicPartitionList::with_capacity(which.len());
        for &i in which {
            let (topic, partition) = &new[i];
            tpl.add_partition_offset(topic, *partition, wanted)
                .map_err(|e| self.error(format!("cannot look up offsets: {e}")))?;
        }
        let found = self
            .consumer
            .offsets_for_times(tpl, REQUEST_TIMEOUT)
            .map_err(|e| {
                self.error(format!(
                    "cannot look up the start offsets ({wanted:?}): {e}"
                ))
            })?;
        let mut out = HashMap::new();
        for &i in which {
            let (topic, partition) = &new[i];
            if let Some(elem) = found.find_partition(topic, *partition) {
                if let Err(e) = elem.error() {
                    return Err(self.error(format!(
                        "cannot look up the start offset of {}: {e}",
                        partition_name(topic, *partition)
                    )));
                }
                if let Offset::Offset(offset) = elem.offset()
                    && offset >= 0
                {
                    out.insert(i, offset);
                }
            }
        }
        Ok(out)
    }

    /// Reads a group commit and its metadata, and whether the metadata was the source's. A commit
    /// written by another tool, or by a broker that drops metadata, restarts at the committed
    /// offset itself.
    fn parse_metadata(
        &self,
        partition: &str,
        committed: u64,
        metadata: &str,
    ) -> (Checkpoint, bool) {
        let plain = Checkpoint {
            offset: committed,
            restart: committed,
            max_ts: None,
        };
        if metadata.is_empty() {
            return (plain, false);
        }
        match serde_json::from_str::<CommitMetadata>(metadata) {
            Ok(meta) if meta.restart <= committed => (
                Checkpoint {
                    offset: committed,
                    restart: meta.restart,
                    max_ts: meta.max_ts,
                },
                true,
            ),
            Ok(meta) => {
                tracing::warn!(
                    source = self.name.as_str(),
                    partition,
                    committed,
                    restart = meta.restart,
                    "kafka commit metadata restarts after the committed offset; restarting at the committed offset"
                );
                (
                    Checkpoint {
                        max_ts: meta.max_ts,
                        ..plain
                    },
                    true,
                )
            }
            Err(e) => {
                tracing::warn!(
                    source = self.name.as_str(), partition, committed, metadata, error = %e,
                    "kafka commit metadata is not the source's; restarting at the committed offset"
                );
                (plain, false)
            }
        }
    }

    /// After the first commit without a checkpoint topic, reads one partition's commit back and
    /// warns when the broker dropped the metadata: restarts would then not rebuild open windows.
    fn check_metadata_kept(&mut self, topic: &str, partition: i32, written: &str) {
        self.metadata_checked = true;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        match self.consumer.committed_offsets(tpl, REQUEST_TIMEOUT) {
            Ok(read) => {
                let kept = read
                    .find_partition(topic, partition)
                    .is_some_and(|e| e.metadata() == written);
                if !kept {
                    tracing::warn!(
                        source = self.name.as_str(),
                        partition = partition_name(topic, partition).as_str(),
                        "the broker does not keep kafka commit metadata: after a restart, windows open at the \
                         last commit will not be rebuilt and watermarks start over. Set checkpoint_topic."
                    );
                }
            }
            Err(e) => {
                tracing::debug!(source = self.name.as_str(), error = %e, "cannot read the first commit back")
            }
        }
    }

    /// Looks for partitions added to the topics; failures are logged and retried later.
    fn maybe_discover(&mut self) -> Result<(), SourceError> {
        if Instant::now() < self.next_discovery {
            return Ok(());
        }
        self.next_discovery = Instant::now() + DISCOVERY_INTERVAL;
        match self.discover(false) {
            Ok(found) if found.is_empty() => Ok(()),
            Ok(found) => {
                tracing::info!(
                    source = self.name.as_str(),
                    count = found.len(),
                    "kafka topics gained partitions"
                );
                // New partitions hold only new data: read them from the start.
                self.assign(found, Start::Earliest)
            }
            Err(e) => {
                tracing::warn!(source = self.name.as_str(), error = %e, "kafka partition discovery failed, retrying later");
                Ok(())
            }
        }
    }

    fn error(&self, message: String) -> SourceError {
        kafka_error(&self.name, message)
    }
}

impl Source for KafkaSource {
    /// Appends up to `max` records; waits up to `timeout` for the first one, then takes only
    /// what is already fetched. Never [`Poll::Exhausted`].
    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<RawRecord>,
    ) -> Result<Poll, SourceError> {
        self.maybe_discover()?;
        if let Some((code, reason)) = self.consumer.client().fatal_error() {
            return Err(self.error(format!("fatal client error {code}: {reason}")));
        }
        let deadline = Instant::now() + timeout;
        let mut taken = 0usize;
        while taken < max {
            let wait = if taken == 0 {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let message = match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) if is_fatal(&e) => {
                    return Err(self.error(format!("cannot go on reading: {e}")));
                }
                Some(Err(e)) => {
                    tracing::warn!(source = self.name.as_str(), error = %e, "kafka consumer error, librdkafka retries");
                    if taken == 0 && Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
            };
            let index = usize::try_from(message.partition()).ok().and_then(|p| {
                self.by_topic
                    .get(message.topic())
                    .and_then(|slots| slots.get(p).copied().flatten())
            });
            let (Some(partition), Ok(offset)) = (index, u64::try_from(message.offset())) else {
                tracing::warn!(
                    source = self.name.as_str(),
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    "kafka message from a partition the source did not assign; skipped"
                );
                continue;
            };
            out.push(RawRecord {
                partition,
                offset,
                payload: message.payload().unwrap_or_default().to_vec(),
            });
            taken += 1;
        }
        Ok(Poll::Open)
    }

    /// The partition table. `replay_until` and `max_event_time` are what the source found at
    /// startup (or when the partition was discovered); they do not change with later commits.
    fn partitions(&self) -> Vec<PartitionInfo> {
        self.table.iter().map(|a| a.info.clone()).collect()
    }

    /// The high watermarks of librdkafka's last statistics report (every 5 s; no request).
    fn end_offsets(&self) -> Vec<Option<u64>> {
        let Ok(ends) = self.consumer.context().ends.lock() else {
            return Vec::new();
        };
        self.table
            .iter()
            .map(|a| {
                ends.get(&(a.topic.clone(), a.partition))
                    .and_then(|high| u64::try_from(*high).ok())
            })
            .collect()
    }

    /// Commits `next_offset` of each partition to the group, synchronously, with the restart
    /// offset and the largest event time as the commit's metadata. When a partition appears more
    /// than once, the last entry wins.
    fn commit(&mut self, commits: &[PartitionCommit]) -> Result<(), SourceError> {
        if commits.is_empty() {
            return Ok(());
        }
        let mut last: HashMap<u32, &PartitionCommit> = HashMap::with_capacity(commits.len());
        for commit in commits {
            if commit.restart_offset > commit.next_offset {
                return Err(self.error(format!(
                    "commit of partition index {}: restart offset {} is after the next offset {}",
                    commit.partition, commit.restart_offset, commit.next_offset
                )));
            }
            last.insert(commit.partition, commit);
        }
        let mut tpl = TopicPartitionList::with_capacity(last.len());
        let mut checkpoints = Vec::with_capacity(last.len());
        let mut first: Option<(String, i32, String)> = None;
        for commit in last.values() {
            let Some(assigned) = usize::try_from(commit.partition)
                .ok()
                .and_then(|i| self.table.get(i))
            else {
                return Err(self.error(format!(
                    "commit names partition index {} but the source has {} partitions",
                    commit.partition,
                    self.table.len()
                )));
            };
            let metadata = serde_json::to_string(&CommitMetadata {
                restart: commit.restart_offset,
                max_ts: commit.max_event_time,
            })
            .map_err(|e| self.error(format!("cannot encode the commit metadata: {e}")))?;
            let mut elem = tpl.add_partition(&assigned.topic, assigned.partition);
            elem.set_offset(Offset::Offset(to_kafka_offset(commit.next_offset)))
                .map_err(|e| self.error(format!("cannot commit {}: {e}", assigned.info.name)))?;
            elem.set_metadata(&metadata);
            if first.is_none() {
                first = Some((assigned.topic.clone(), assigned.partition, metadata));
            }
            checkpoints.push((
                assigned.topic.as_str(),
                assigned.partition,
                Checkpoint {
                    offset: commit.next_offset,
                    restart: commit.restart_offset,
                    max_ts: commit.max_event_time,
                },
            ));
        }
        // The checkpoint goes first: after a crash between the two writes it is the newer one.
        if let Some(store) = &self.checkpoints {
            store.write(&checkpoints).map_err(|e| self.error(e))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| self.error(format!("commit of {} partitions failed: {e}", tpl.count())))?;
        tracing::debug!(
            source = self.name.as_str(),
            partitions = tpl.count(),
            "kafka offsets committed"
        );
        if let Some((topic, partition, metadata)) =
            first.filter(|_| self.checkpoints.is_none() && !self.metadata_checked)
        {
            self.check_metadata_kept(&topic, partition, &metadata);
        }
        Ok(())
    }
}

/// `kafka:<topic>/<partition>`, the name of a partition in [`PartitionInfo`] and dead letters.
pub fn partition_name(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

fn kafka_error(name: &str, message: String) -> SourceError {
    SourceError::Kafka {
        name: name.to_owned(),
        message,
    }
}

/// Offsets above `i64::MAX` do not exist in Kafka; saturate rather than wrap.
fn to_kafka_offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

/// Topic-level metadata errors that go away by themselves (a leader being elected).
fn is_transient_metadata_error(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::ReplicaNotAvailable
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
    )
}

/// Consumer errors after which reading cannot go on. Everything else (transport failures, broker
/// restarts, leader changes) is retried by librdkafka.
fn is_fatal(error: &KafkaError) -> bool {
    if matches!(error, KafkaError::MessageConsumptionFatal(_)) {
        return true;
    }
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::AutoOffsetReset
        )
    )
}
