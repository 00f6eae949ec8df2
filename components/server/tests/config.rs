//! Parsing and validating `shoal-server`'s configuration.

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use raftstore::SplitPolicyConfig;
use server::cpu_scheduling::CpuScheduling;
use server::{Config, ConfigError, Flags};

fn parse(text: &str) -> Result<Config, ConfigError> {
    let cfg = Config::from_toml(text, Path::new("test.toml"))?;
    cfg.validate()?;
    Ok(cfg)
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg.server.addr, "127.0.0.1:20160");
    assert_eq!(cfg.server.status_addr, "127.0.0.1:20180");
    assert_eq!(cfg.server.grpc_concurrency, 2);
    assert_eq!(cfg.server.max_grpc_message_size, 64 * 1024 * 1024);
    assert_eq!(cfg.server.cpu_scheduling, CpuScheduling::Normal);
    assert_eq!(cfg.pd.endpoints, vec!["127.0.0.1:2379".to_string()]);
    assert_eq!(cfg.pd.start_timeout, Duration::from_secs(60));
    assert_eq!(
        cfg.pessimistic_txn.wait_for_lock_timeout,
        Duration::from_secs(1)
    );
    assert_eq!(cfg.storage.max_ts_drift_allowance, Duration::from_secs(60));
    let raft = cfg.raftstore_config().unwrap();
    let defaults = raftstore::Config::default();
    assert_eq!(
        raft.raft_base_tick_interval,
        defaults.raft_base_tick_interval
    );
    assert_eq!(
        raft.pd_heartbeat_tick_interval,
        defaults.pd_heartbeat_tick_interval
    );
    assert_eq!(raft.split_policy, defaults.split_policy);
    assert_eq!(
        raft.leader_transfer_max_log_lag,
        defaults.leader_transfer_max_log_lag
    );
    let strict = parse("[raftstore]\nleader-transfer-max-log-lag = 0").unwrap();
    assert_eq!(
        strict
            .raftstore_config()
            .unwrap()
            .leader_transfer_max_log_lag,
        0
    );
}

#[test]
fn durations_are_humantime_strings() {
    let cfg = parse(
        r#"
        [raftstore]
        raft-base-tick-interval = "100ms"
        raft-store-max-leader-lease = "800ms"
        raft-write-wait-duration = "20us"
        pd-heartbeat-tick-interval = "1s"
        pd-store-heartbeat-tick-interval = "2s"
        max-peer-down-duration = "5m"
        "#,
    )
    .unwrap();
    let raft = cfg.raftstore_config().unwrap();
    assert_eq!(raft.raft_base_tick_interval, Duration::from_millis(100));
    let waits = parse("[pessimistic-txn]\nwait-for-lock-timeout = \"250ms\"").unwrap();
    assert_eq!(
        waits.pessimistic_txn.wait_for_lock_timeout,
        Duration::from_millis(250)
    );
    let drift = parse("[storage]\nmax-ts-drift-allowance = \"5m\"").unwrap();
    let json_logs = parse("[log]\nformat = \"json\"").unwrap();
    assert_eq!(json_logs.log.format, server::config::LogFormat::Json);
    assert!(parse("[log]\nformat = \"xml\"").is_err());
    assert_eq!(
        drift.storage.max_ts_drift_allowance,
        Duration::from_secs(300)
    );
    assert_eq!(raft.raft_write_wait_duration, Duration::from_micros(20));
    assert_eq!(
        raft.pd_store_heartbeat_tick_interval,
        Duration::from_secs(2)
    );
    assert_eq!(raft.max_peer_down_duration, Duration::from_secs(300));
    let err = parse("[raftstore]\nraft-base-tick-interval = \"soon\"").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    for text in [
        "[server]\nadress = \"127.0.0.1:1\"",
        "[raftstore]\nraft-base-tick = \"1s\"",
        "[nonsense]\nx = 1",
        "[rocksdb]\nwrite-buffer = 1",
        "[raft-engine]\ncompression = true",
        "[raftstore.split-policy]\nkind = \"size\"\nmax-size = 2\nsplit-size = 1\nextra = 3",
    ] {
        let err = parse(text).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
        assert!(err.to_string().contains("unknown"), "{text}: {err}");
    }
}

#[test]
fn rocksdb_settings_reach_the_engine_options() {
    let defaults = parse("").unwrap().rocksdb;
    assert_eq!(defaults, engine::KvEngineOptions::default());
    let cfg = parse(
        "[rocksdb]\nwrite-buffer-size = 16777216\nrate-bytes-per-sec = 67108864\n\
         low-priority-background = true\nuncompressed-levels = 0\n\
         memtable-bloom-size-ratio = 0.1\nmin-blob-size = 4096\n\
         direct-io-for-flush-and-compaction = true\n\
         prepopulate-block-cache = \"flush-and-compaction\"",
    )
    .unwrap();
    let opts = cfg.rocksdb;
    assert_eq!(opts.memtable_bloom_size_ratio, 0.1);
    assert_eq!(opts.min_blob_size, 4096);
    assert!(opts.direct_io_for_flush_and_compaction);
    assert_eq!(
        opts.prepopulate_block_cache,
        engine::PrepopulateBlockCache::FlushAndCompaction
    );
    assert_eq!(
        defaults.prepopulate_block_cache,
        engine::PrepopulateBlockCache::Disable
    );
    let err = parse("[rocksdb]\nprepopulate-block-cache = \"always\"").unwrap_err();
    assert!(err.to_string().contains("always"), "{err}");
    assert!(
        !defaults.direct_io_for_flush_and_compaction,
        "table files go through the page cache by default"
    );
    assert_eq!(
        defaults.min_blob_size, 0,
        "values stay in the tree by default"
    );
    assert_eq!(opts.write_buffer_size, 16 * 1024 * 1024);
    assert_eq!(opts.rate_bytes_per_sec, 64 * 1024 * 1024);
    assert!(opts.low_priority_background);
    assert_eq!(opts.uncompressed_levels, 0);
    assert_eq!(opts.bytes_per_sync, defaults.bytes_per_sync);
}

#[test]
fn raft_engine_settings_reach_the_raft_log_options() {
    let defaults = parse("").unwrap().raft_engine;
    assert_eq!(defaults, engine::RaftLogOptions::default());
    assert_eq!(defaults.batch_compression_threshold, 8192);
    let cfg = parse("[raft-engine]\nbatch-compression-threshold = 0").unwrap();
    assert_eq!(cfg.raft_engine.batch_compression_threshold, 0);
    let err = parse("[raft-engine]\nbatch-compression-threshold = -1").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert_eq!(defaults.target_file_size, 128 << 20);
    assert_eq!(defaults.purge_threshold, 10 << 30);
    let cfg =
        parse("[raft-engine]\ntarget-file-size = 8388608\npurge-threshold = 1073741824").unwrap();
    assert_eq!(cfg.raft_engine.target_file_size, 8 << 20);
    assert_eq!(cfg.raft_engine.purge_threshold, 1 << 30);
    let err = parse("[raft-engine]\npurge-threshold = 1048576").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid(m) if m.contains("purge-threshold")),
        "{err}"
    );
}

/// The store's data directory opens its raft log with the `[raft-engine]` options.
#[test]
fn data_dirs_open_the_raft_log_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = server::node::DataDirs::new(dir.path());
    dirs.create().unwrap();
    let options = parse("[raft-engine]\nbatch-compression-threshold = 0")
        .unwrap()
        .raft_engine;
    let (_kv, raft) = dirs.open_engines(&Default::default(), &options).unwrap();
    let mut batch = engine::RaftLogBatch::new();
    let entries = (1..=32)
        .map(|index| proto::eraftpb::Entry {
            index,
            term: 1,
            data: vec![b'z'; 1024].into(),
            ..Default::default()
        })
        .collect();
    batch.append(1, entries).unwrap();
    let written = raft.write(&mut batch, true).unwrap();
    assert!(
        written >= 32 * 1024,
        "32 KiB of one repeated byte written as {written} bytes: compression stayed on"
    );
}

#[test]
fn split_policies_are_chosen_by_kind() {
    let cfg = parse(
        "[raftstore.split-policy]\nkind = \"fixed-keys\"\nboundaries = [\"72000001\", \"78000001\"]",
    )
    .unwrap();
    assert_eq!(
        cfg.raftstore_config().unwrap().split_policy,
        SplitPolicyConfig::FixedKeys {
            boundaries: vec![vec![b'r', 0, 0, 1], vec![b'x', 0, 0, 1]]
        }
    );
    let err = parse("[raftstore.split-policy]\nkind = \"fixed-keys\"\nboundaries = [\"zz\"]")
        .unwrap_err();
    assert!(err.to_string().contains("not hex"), "{err}");
}

#[test]
fn cpu_scheduling_is_normal_or_batch() {
    let cfg = parse("[server]\ncpu-scheduling = \"batch\"").unwrap();
    assert_eq!(cfg.server.cpu_scheduling, CpuScheduling::Batch);
    let err = parse("[server]\ncpu-scheduling = \"fifo\"").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cpu-scheduling") && text.contains("`batch`"),
        "{text}"
    );
}

#[test]
fn an_incomplete_security_section_is_named_once() {
    let err = parse("[security]\nca-path = \"ca.pem\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[security] needs ca-path"), "{err}");
    assert_eq!(err.matches("[security]").count(), 1, "{err}");
}

#[test]
fn invalid_values_are_refused_with_a_clear_message() {
    let cases = [
        ("[server]\naddr = \"nowhere\"", "server.addr"),
        ("[server]\naddr = \"0.0.0.0:20160\"", "advertise-addr"),
        ("[server]\ngrpc-concurrency = 0", "grpc-concurrency"),
        ("[pd]\nendpoints = []", "pd.endpoints"),
        ("[pd]\nendpoints = [\"pd\"]", "pd.endpoints"),
        (
            "[raftstore]\nraft-store-max-leader-lease = \"1h\"",
            "raft-store-max-leader-lease",
        ),
        ("[log]\nlevel = \"[[\"", "log.level"),
        (
            "[pessimistic-txn]\nwait-for-lock-timeout = \"2h\"",
            "wait-for-lock-timeout",
        ),
        (
            "[storage]\nmax-ts-drift-allowance = \"100ms\"",
            "max-ts-drift-allowance",
        ),
        // Beyond a year, a deadline of now + setting would overflow.
        ("[pd]\nstart-timeout = \"1000years\"", "pd.start-timeout"),
        ("[pd]\nrequest-timeout = \"400days\"", "pd.request-timeout"),
        ("[gc]\npoll-interval = \"1000years\"", "gc.poll-interval"),
        // Each zero names its own setting.
        ("[gc]\npoll-interval = \"0s\"", "gc.poll-interval must"),
        ("[gc]\nbatch-keys = 0", "gc.batch-keys must"),
        ("[pd]\nstart-timeout = \"0s\"", "pd.start-timeout must"),
        ("[pd]\nrequest-timeout = \"0s\"", "pd.request-timeout must"),
        ("[rocksdb]\nwrite-buffer-size = 1024", "write-buffer-size"),
        ("[rocksdb]\nuncompressed-levels = 9", "uncompressed-levels"),
        (
            "[rocksdb]\nrate-bytes-per-sec = 0\nrate-limiter-auto-tuned = true",
            "rate-limiter-auto-tuned",
        ),
    ];
    for (text, needle) in cases {
        let err = parse(text).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{text}: {err}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.toml");
    std::fs::write(
        &file,
        "[server]\naddr = \"127.0.0.1:1111\"\nstatus-addr = \"127.0.0.1:2222\"\n\
         [storage]\ndata-dir = \"/from/file\"\n[pd]\nendpoints = [\"127.0.0.1:3333\"]",
    )
    .unwrap();
    let flags = Flags::try_parse_from([
        "shoal-server",
        "--config",
        file.to_str().unwrap(),
        "--pd",
        "127.0.0.1:4444,http://127.0.0.1:5555",
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        "/from/flag",
    ])
    .unwrap();
    let cfg = Config::load(&flags).unwrap();
    assert_eq!(cfg.server.addr, "127.0.0.1:0");
    assert_eq!(cfg.server.status_addr, "127.0.0.1:2222");
    assert_eq!(cfg.storage.data_dir, Path::new("/from/flag"));
    assert_eq!(
        cfg.pd.endpoints,
        vec![
            "127.0.0.1:4444".to_string(),
            "http://127.0.0.1:5555".to_string()
        ]
    );

    let missing =
        Flags::try_parse_from(["shoal-server", "--config", "/no/such/file.toml"]).unwrap();
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn the_effective_config_is_written_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = parse("[raftstore]\nraft-write-wait-duration = \"20us\"").unwrap();
    cfg.write_effective(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("store.toml")).unwrap();
    assert!(
        text.contains("raft-write-wait-duration = \"20us\""),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap(), cfg);
}

#[test]
fn config_files_layer_in_order_table_by_table() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    let overrides = dir.path().join("overrides.toml");
    std::fs::write(
        &base,
        "[raftstore]\nstore-pool-size = 1\napply-pool-size = 1\n\
         [server]\nstatus-addr = \"127.0.0.1:2222\"\n\
         [pd]\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\"]",
    )
    .unwrap();
    // The same section again, which one concatenated file would refuse as a duplicate table.
    std::fs::write(
        &overrides,
        "[raftstore]\napply-pool-size = 3\n[pd]\nendpoints = [\"127.0.0.1:3\"]",
    )
    .unwrap();
    let flags = |files: &[&Path]| {
        let mut args = vec!["shoal-server".to_string()];
        for f in files {
            args.push("--config".into());
            args.push(f.to_str().unwrap().into());
        }
        Flags::try_parse_from(args).unwrap()
    };
    let cfg = Config::load(&flags(&[&base, &overrides])).unwrap();
    assert_eq!(cfg.raftstore.store_pool_size, 1, "kept from the base");
    assert_eq!(cfg.raftstore.apply_pool_size, 3, "overridden");
    assert_eq!(cfg.server.status_addr, "127.0.0.1:2222");
    // An array is a value like any other: replaced, not appended to.
    assert_eq!(cfg.pd.endpoints, vec!["127.0.0.1:3".to_string()]);
    // The other order: the base's keys win.
    let cfg = Config::load(&flags(&[&overrides, &base])).unwrap();
    assert_eq!(cfg.raftstore.apply_pool_size, 1);
    assert_eq!(cfg.pd.endpoints.len(), 2);

    // A bad layer is named; an unknown key in any layer is refused.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[raftstore\n").unwrap();
    match Config::load(&flags(&[&base, &broken])).unwrap_err() {
        ConfigError::Parse { path, .. } => assert_eq!(path, broken),
        e => panic!("{e}"),
    }
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[raftstore]\nno-such-key = 1\n").unwrap();
    let err = Config::load(&flags(&[&base, &unknown])).unwrap_err();
    assert!(
        matches!(err, ConfigError::Parse { .. }) && err.to_string().contains("no-such-key"),
        "{err}"
    );
    let missing = Path::new("/no/such/layer.toml");
    let err = Config::load(&flags(&[&base, missing])).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}
