//! Prometheus metrics of the raftstore.

use lazy_static::lazy_static;
use prometheus::{
    exponential_buckets, register_histogram, register_int_counter, register_int_counter_vec,
    register_int_gauge, Histogram, IntCounter, IntCounterVec, IntGauge,
};

lazy_static! {
    pub static ref REGIONS: IntGauge = register_int_gauge!(
        "shoal_raftstore_regions",
        "Regions with a peer on this store"
    )
    .expect("metric registers once");
    pub static ref LEADERS: IntGauge =
        register_int_gauge!("shoal_raftstore_leaders", "Regions this store leads")
            .expect("metric registers once");
    pub static ref BECAME_LEADER: IntCounter = register_int_counter!(
        "shoal_raftstore_became_leader_total",
        "Times a peer on this store won an election (or a leader transfer) and became leader"
    )
    .expect("metric registers once");
    pub static ref STEPPED_DOWN: IntCounter = register_int_counter!(
        "shoal_raftstore_stepped_down_total",
        "Times a leader on this store stepped down"
    )
    .expect("metric registers once");
    pub static ref PROPOSE_TO_COMMIT: Histogram = register_histogram!(
        "shoal_raftstore_propose_to_commit_seconds",
        "From a command's proposal on this leader to its entry being committed by a quorum",
        exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")
    )
    .expect("metric registers once");
    pub static ref COMMIT_TO_APPLY: Histogram = register_histogram!(
        "shoal_raftstore_commit_to_apply_seconds",
        "From committed entries being handed to the apply pool to their write being applied",
        exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")
    )
    .expect("metric registers once");
    pub static ref SNAPSHOT_GENERATE_DURATION: Histogram = register_histogram!(
        "shoal_raftstore_snapshot_generate_seconds",
        "Time the region worker took to build one region snapshot (read the region, write \
         its SST files)",
        exponential_buckets(0.001, 2.0, 20).expect("valid buckets")
    )
    .expect("metric registers once");
    pub static ref SNAPSHOT_INGEST_DURATION: Histogram = register_histogram!(
        "shoal_raftstore_snapshot_ingest_seconds",
        "Time the region worker took to ingest one received region snapshot (verify its \
         files, ingest them, mark the region Normal)",
        exponential_buckets(0.001, 2.0, 20).expect("valid buckets")
    )
    .expect("metric registers once");
    pub static ref SNAPSHOT_FILES_REMOVED: IntCounter = register_int_counter!(
        "shoal_raftstore_snapshot_files_removed_total",
        "Snapshot files the region worker removed because nothing would read them again \
         (see snap-gc-interval)"
    )
    .expect("metric registers once");
    pub static ref SNAPSHOT_DIR_BYTES: IntGauge = register_int_gauge!(
        "shoal_raftstore_snapshot_dir_bytes",
        "Bytes of snapshot files in the store's snapshot directory after the last removal pass"
    )
    .expect("metric registers once");
    pub static ref DISK_FULL: IntGauge = register_int_gauge!(
        "shoal_store_disk_full",
        "1 while the store refuses writes because its disk is almost full"
    )
    .expect("metric registers once");
    pub static ref DISK_AVAILABLE_BYTES: IntGauge = register_int_gauge!(
        "shoal_store_disk_available_bytes",
        "Bytes available on the fullest filesystem holding the store's data"
    )
    .expect("metric registers once");
    pub static ref PROPOSALS: IntCounter = register_int_counter!(
        "shoal_raftstore_proposals_total",
        "Commands proposed to raft"
    )
    .expect("metric registers once");
    pub static ref RAFT_DROPPED_MESSAGES: IntCounter = register_int_counter!(
        "shoal_raftstore_dropped_raft_messages_total",
        "Raft messages dropped as invalid or stale"
    )
    .expect("metric registers once");
    pub static ref RAFT_MESSAGES_DROPPED_MAILBOX_FULL: IntCounterVec = register_int_counter_vec!(
        "shoal_raftstore_raft_messages_dropped_mailbox_full_total",
        "Raft messages dropped because the mailbox they were for was full (raft sends them \
         again), by mailbox: a region's peer, or the store FSM (regions without a local peer)",
        &["mailbox"]
    )
    .expect("metric registers once");
    pub static ref LOG_WRITER_FSYNCS: IntCounter = register_int_counter!(
        "shoal_raftstore_log_writer_fsyncs_total",
        "Synced raft log batches written by the log writer"
    )
    .expect("metric registers once");
    pub static ref LOG_WRITER_ENTRIES: IntCounter = register_int_counter!(
        "shoal_raftstore_log_writer_entries_total",
        "Raft entries persisted by the log writer"
    )
    .expect("metric registers once");
    pub static ref LOG_WRITER_TASKS: IntCounter = register_int_counter!(
        "shoal_raftstore_log_writer_tasks_total",
        "Peer readies persisted by the log writer"
    )
    .expect("metric registers once");
    pub static ref LOG_WRITER_DURATION: Histogram = register_histogram!(
        "shoal_raftstore_log_writer_write_seconds",
        "Duration of one synced raft log write",
        exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")
    )
    .expect("metric registers once");
    pub static ref APPLY_ENTRIES: IntCounter = register_int_counter!(
        "shoal_raftstore_applied_entries_total",
        "Raft entries applied to the state machine"
    )
    .expect("metric registers once");
    pub static ref APPLY_BATCH_WRITES: Histogram = register_histogram!(
        "shoal_raftstore_apply_write_seconds",
        "Duration of one apply write batch",
        exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")
    )
    .expect("metric registers once");
    pub static ref REGION_HEARTBEATS: IntCounter = register_int_counter!(
        "shoal_raftstore_region_heartbeats_total",
        "Region heartbeats sent to PD by leaders"
    )
    .expect("metric registers once");
    pub static ref REGION_HEARTBEATS_SKIPPED: IntCounter = register_int_counter!(
        "shoal_raftstore_region_heartbeats_skipped_total",
        "Region heartbeat ticks that sent nothing: the report would have repeated the last one"
    )
    .expect("metric registers once");
    pub static ref PD_OPERATOR_STEPS: IntCounterVec = register_int_counter_vec!(
        "shoal_raftstore_pd_operator_steps_total",
        "Operator steps from PD, by outcome (executed or ignored)",
        &["outcome"]
    )
    .expect("metric registers once");
    pub static ref LEADER_TRANSFERS: IntCounterVec = register_int_counter_vec!(
        "shoal_raftstore_leader_transfers_total",
        "Leader transfer requests, by outcome (started or refused)",
        &["outcome"]
    )
    .expect("metric registers once");
    pub static ref PROPOSALS_REFUSED_IN_TRANSFER: IntCounter = register_int_counter!(
        "shoal_raftstore_proposals_refused_in_transfer_total",
        "Proposals answered NotLeader because a leader transfer was under way"
    )
    .expect("metric registers once");
    pub static ref SPLIT_CHECK_SCANS: IntCounter = register_int_counter!(
        "shoal_raftstore_split_check_scans_total",
        "Split checks that read the whole region because the size estimates placed no cut"
    )
    .expect("metric registers once");
}

/// Registers every series above now, so each is exported (at zero) from the store's start
/// rather than from the first event that touches it: dashboards and alerts see the series
/// before anything happened.
pub fn register_all() {
    lazy_static::initialize(&REGIONS);
    lazy_static::initialize(&LEADERS);
    lazy_static::initialize(&BECAME_LEADER);
    lazy_static::initialize(&STEPPED_DOWN);
    lazy_static::initialize(&PROPOSE_TO_COMMIT);
    lazy_static::initialize(&COMMIT_TO_APPLY);
    lazy_static::initialize(&SNAPSHOT_GENERATE_DURATION);
    lazy_static::initialize(&SNAPSHOT_INGEST_DURATION);
    lazy_static::initialize(&SNAPSHOT_FILES_REMOVED);
    lazy_static::initialize(&SNAPSHOT_DIR_BYTES);
    lazy_static::initialize(&DISK_FULL);
    lazy_static::initialize(&DISK_AVAILABLE_BYTES);
    lazy_static::initialize(&PROPOSALS);
    lazy_static::initialize(&RAFT_DROPPED_MESSAGES);
    lazy_static::initialize(&LOG_WRITER_FSYNCS);
    lazy_static::initialize(&LOG_WRITER_ENTRIES);
    lazy_static::initialize(&LOG_WRITER_TASKS);
    lazy_static::initialize(&LOG_WRITER_DURATION);
    lazy_static::initialize(&APPLY_ENTRIES);
    lazy_static::initialize(&APPLY_BATCH_WRITES);
    lazy_static::initialize(&REGION_HEARTBEATS);
    lazy_static::initialize(&REGION_HEARTBEATS_SKIPPED);
    lazy_static::initialize(&PD_OPERATOR_STEPS);
    lazy_static::initialize(&LEADER_TRANSFERS);
    lazy_static::initialize(&PROPOSALS_REFUSED_IN_TRANSFER);
    lazy_static::initialize(&SPLIT_CHECK_SCANS);
}
