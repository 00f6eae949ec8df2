//! Command-line shape of `shoal-ctl`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The longest `--timeout`, in seconds: a year. gRPC deadlines far beyond it overflow.
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Inspect and operate a Shoal cluster.
#[derive(Debug, Parser)]
#[command(name = "shoal-ctl", version, about)]
pub struct Cli {
    /// PD gRPC endpoint (used by the key-value, txn and locks commands).
    #[arg(long, global = true, default_value = "127.0.0.1:2379")]
    pub pd: String,
    /// PD HTTP endpoint (used by the cluster, region, operator, store and mvcc commands).
    #[arg(long = "pd-http", global = true, default_value = "127.0.0.1:2380")]
    pub pd_http: String,
    /// Timeout of one key-value or store request, in seconds (1 to 31,536,000, a year). The
    /// client retries a request that failed for a reason that may pass (a leader moving, a
    /// store restarting) with backoff, so a command can take longer than this.
    #[arg(long, global = true, default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub timeout: u64,
    /// The cluster's storage API version (`storage.api-version`): 2 addresses the default
    /// keyspace, 1 takes keys as given. The key-value and txn commands use it; the commands
    /// that locate keys through PD's HTTP API (region --key, mvcc, operator) speak API V2.
    #[arg(long = "api-version", global = true, default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub api_version: u8,
    /// CA certificate (PEM) of a TLS cluster; with --cert-path and --key-path, every
    /// connection uses TLS with this client certificate (`https://` for PD's HTTP API).
    #[arg(long, global = true)]
    pub ca_path: Option<PathBuf>,
    /// Client certificate (PEM) presented to a TLS cluster.
    #[arg(long, global = true)]
    pub cert_path: Option<PathBuf>,
    /// Private key (PEM) of --cert-path.
    #[arg(long, global = true)]
    pub key_path: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stores, totals over all regions, and one page of regions in key order.
    Cluster(ClusterArgs),
    /// Split the default keyspace at many keys at once (before a bulk load): keys from a file,
    /// or evenly spread numbered keys (`--prefix user --digits 20 --regions 1000`).
    Presplit(PresplitArgs),
    /// Details of one region, by id or by the user key it holds.
    Region(RegionArgs),
    /// Read one key of the default keyspace.
    Get {
        /// The key (`\xNN` and `\\` escapes accepted).
        key: String,
    },
    /// Write one key of the default keyspace.
    Put {
        key: String,
        value: String,
        /// Expire the key after this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Delete one key of the default keyspace.
    Delete { key: String },
    /// List keys of the default keyspace in order.
    Scan(ScanArgs),
    /// Transactional reads and writes of the default keyspace, one optimistic transaction each.
    #[command(subcommand)]
    Txn(TxnCommand),
    /// Locks of transactions that started at or before now (prewritten, not yet resolved).
    Locks(LocksArgs),
    /// Every MVCC record of one transactional key: its lock and all its versions.
    Mvcc(MvccArgs),
    /// Move the cluster's GC safe point forward, after resolving every lock at or below it,
    /// so the stores drop the MVCC versions older than it that no reader needs.
    Gc(GcArgs),
    /// Show or create PD operators.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// List or decommission stores.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Certificates for a TLS fleet.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `cert ...`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a throwaway CA and, signed by it, a server certificate (PD and stores) and a
    /// client certificate (clients and tools), valid for 127.0.0.1 and localhost.
    Generate {
        /// Directory to write ca.pem, server.pem, server-key.pem, client.pem and
        /// client-key.pem into (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Common Name of the client certificate.
        #[arg(long, default_value = "shoal-client")]
        cn: String,
        /// Common Name of the server certificate.
        #[arg(long, default_value = "shoal-server")]
        server_cn: String,
        /// Days the certificates stay valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Replace certificates already in --dir. Without it an existing file is left alone
        /// and the command fails: a fleet running on the old CA would refuse the new ones.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct RegionArgs {
    /// Region id.
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub id: Option<u64>,
    /// A user key of the default keyspace; shows the region holding it.
    #[arg(long)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// First key (inclusive); the start of the keyspace when absent.
    #[arg(long)]
    pub from: Option<String>,
    /// Last key (exclusive); the end of the keyspace when absent.
    #[arg(long)]
    pub to: Option<String>,
    /// Most pairs to print (the client allows at most 10240).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10240))]
    pub limit: u32,
    /// Print keys only.
    #[arg(long)]
    pub keys_only: bool,
}

/// `txn ...`: the raw commands' counterparts in the transactional key space (a key written
/// by `put` is not seen by `txn get`, and the other way round).
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Read one key in a fresh snapshot.
    Get {
        /// The key (`\xNN` and `\\` escapes accepted).
        key: String,
    },
    /// Write one key and commit.
    Put { key: String, value: String },
    /// Delete one key and commit.
    Delete { key: String },
    /// List keys in order, in a fresh snapshot.
    Scan(ScanArgs),
}

#[derive(Debug, Args)]
pub struct LocksArgs {
    /// Only the lock on this key.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub key: Option<String>,
    /// First key (inclusive); the start of the keyspace when absent.
    #[arg(long)]
    pub from: Option<String>,
    /// Last key (exclusive); the end of the keyspace when absent.
    #[arg(long)]
    pub to: Option<String>,
    /// Most locks to print.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10240))]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How far behind PD's current time the safe point goes: every transaction must finish
    /// within it (humantime: "10m", "2h"; at least 10 minutes).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration,
          conflicts_with = "safe_point")]
    pub life_time: Duration,
    /// An exact safe point instead: a timestamp (TSO) not ahead of PD's current one.
    #[arg(long)]
    pub safe_point: Option<u64>,
}

#[derive(Debug, Args)]
pub struct MvccArgs {
    /// The transactional key of the default keyspace.
    #[arg(long)]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Regions to list, from --from on (the totals always cover every region).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// List regions from the one holding this user key of the default keyspace.
    #[arg(long)]
    pub from: Option<String>,
}

#[derive(Debug, Args)]
pub struct PresplitArgs {
    /// A file of user keys to split at, one per line (`\xNN` escapes accepted).
    #[arg(long, conflicts_with_all = ["prefix", "regions"])]
    pub keys_file: Option<PathBuf>,
    /// Numbered keys: this prefix followed by a zero-padded decimal number.
    #[arg(long, requires = "regions")]
    pub prefix: Option<String>,
    /// How many regions the numbered keys cut their range into (one key fewer than this).
    #[arg(long, requires = "prefix")]
    pub regions: Option<u64>,
    /// Digits of the numbered keys (20 holds any u64).
    #[arg(long, default_value_t = 20)]
    pub digits: u32,
    /// The numbers spread over [0, max); default and largest 10^digits.
    #[arg(long)]
    pub max: Option<u64>,
    /// Most keys split in one region at once (one raft BatchSplit), 1 to 1024.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Seconds to wait for PD to see each batch's split.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
    /// Print a line per batch to standard error.
    #[arg(long)]
    pub progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Operators PD is running now, then the ones that ended lately (finished, timed out or
    /// cancelled; newest first), each with its STATUS.
    Show,
    /// Move a region's leadership to the peer on a store.
    TransferLeader { region: u64, store: u64 },
    /// Add a peer of a region on a store.
    AddPeer { region: u64, store: u64 },
    /// Remove a region's peer from a store.
    RemovePeer { region: u64, store: u64 },
    /// Split a region at a user key of the default keyspace.
    Split {
        region: u64,
        #[arg(long)]
        key: String,
    },
    /// Cancel the operator running on a region.
    Cancel { region: u64 },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// All stores with their state and load.
    List,
    /// Decommission a store: PD moves its regions away, then marks it Tombstone. Refused
    /// when fewer than max-replicas Up stores would remain.
    Delete { id: u64 },
    /// Cancel a decommission that has not finished: the Offline store is Up again and keeps
    /// the peers it still holds.
    CancelDelete { id: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("shoal-ctl").chain(args.iter().copied()))
    }

    #[test]
    fn global_endpoints_have_defaults_and_go_anywhere() {
        let cli = parse(&["cluster"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cluster(ClusterArgs {
                limit: 100,
                from: None
            })
        ));
        assert_eq!(cli.pd, "127.0.0.1:2379");
        assert_eq!(cli.pd_http, "127.0.0.1:2380");
        let cli = parse(&["get", "k", "--pd", "h:1", "--pd-http", "h:2"]).unwrap();
        assert_eq!(cli.pd, "h:1");
        assert_eq!(cli.pd_http, "h:2");
        assert!(matches!(cli.command, Command::Get { key } if key == "k"));
    }

    #[test]
    fn the_timeout_is_between_a_second_and_a_year() {
        assert_eq!(parse(&["get", "k"]).unwrap().timeout, 5);
        let year = MAX_TIMEOUT_SECS.to_string();
        assert_eq!(
            parse(&["get", "k", "--timeout", &year]).unwrap().timeout,
            MAX_TIMEOUT_SECS
        );
        for bad in ["0", "31536001", "360000000000", "18446744073709551615"] {
            let err = parse(&["get", "k", "--timeout", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--timeout"), "{bad}: {err}");
        }
    }

    #[test]
    fn put_takes_an_optional_ttl() {
        let cli = parse(&["put", "k", "v", "--ttl", "5"]).unwrap();
        assert!(matches!(cli.command, Command::Put { ttl: Some(5), .. }));
        assert!(parse(&["put", "k"]).is_err());
    }

    #[test]
    fn region_needs_exactly_one_of_id_and_key() {
        assert!(matches!(
            parse(&["region", "7"]).unwrap().command,
            Command::Region(RegionArgs {
                id: Some(7),
                key: None
            })
        ));
        assert!(matches!(
            parse(&["region", "--key", "a"]).unwrap().command,
            Command::Region(RegionArgs {
                id: None,
                key: Some(_)
            })
        ));
        assert!(parse(&["region"]).is_err());
        assert!(parse(&["region", "7", "--key", "a"]).is_err());
        assert!(parse(&["region", "seven"]).is_err());
    }

    #[test]
    fn scan_limits_are_bounded() {
        let cli = parse(&["scan", "--from", "a", "--keys-only"]).unwrap();
        match cli.command {
            Command::Scan(s) => {
                assert_eq!(s.from.as_deref(), Some("a"));
                assert_eq!(s.to, None);
                assert_eq!(s.limit, 100);
                assert!(s.keys_only);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(parse(&["scan", "--limit", "0"]).is_err());
        assert!(parse(&["scan", "--limit", "10241"]).is_err());
    }

    #[test]
    fn txn_subcommands_mirror_the_raw_ones() {
        assert!(matches!(
            parse(&["txn", "get", "k"]).unwrap().command,
            Command::Txn(TxnCommand::Get { key }) if key == "k"
        ));
        assert!(matches!(
            parse(&["txn", "put", "k", "v"]).unwrap().command,
            Command::Txn(TxnCommand::Put { key, value }) if key == "k" && value == "v"
        ));
        assert!(matches!(
            parse(&["txn", "delete", "k"]).unwrap().command,
            Command::Txn(TxnCommand::Delete { .. })
        ));
        match parse(&["txn", "scan", "--to", "m", "--limit", "5", "--keys-only"])
            .unwrap()
            .command
        {
            Command::Txn(TxnCommand::Scan(s)) => {
                assert_eq!((s.from, s.to.as_deref()), (None, Some("m")));
                assert_eq!(s.limit, 5);
                assert!(s.keys_only);
            }
            other => panic!("parsed as {other:?}"),
        }
        // Transactions have no TTL, and a put needs its value.
        assert!(parse(&["txn", "put", "k", "v", "--ttl", "5"]).is_err());
        assert!(parse(&["txn", "put", "k"]).is_err());
        assert!(parse(&["txn", "scan", "--limit", "0"]).is_err());
        assert!(parse(&["txn"]).is_err());
    }

    #[test]
    fn locks_take_a_key_or_a_range() {
        match parse(&["locks"]).unwrap().command {
            Command::Locks(l) => {
                assert!(l.key.is_none() && l.from.is_none() && l.to.is_none());
                assert_eq!(l.limit, 100);
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse(&["locks", "--from", "a", "--to", "b", "--limit", "7"])
            .unwrap()
            .command
        {
            Command::Locks(l) => {
                assert_eq!((l.from.as_deref(), l.to.as_deref()), (Some("a"), Some("b")));
                assert_eq!(l.limit, 7);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            parse(&["locks", "--key", "k"]).unwrap().command,
            Command::Locks(LocksArgs { key: Some(_), .. })
        ));
        assert!(parse(&["locks", "--key", "k", "--from", "a"]).is_err());
        assert!(parse(&["locks", "--key", "k", "--to", "b"]).is_err());
        assert!(parse(&["locks", "--limit", "10241"]).is_err());
    }

    #[test]
    fn mvcc_needs_a_key() {
        assert!(matches!(
            parse(&["mvcc", "--key", "k"]).unwrap().command,
            Command::Mvcc(MvccArgs { key }) if key == "k"
        ));
        assert!(parse(&["mvcc"]).is_err());
        assert!(parse(&["mvcc", "k"]).is_err());
    }

    #[test]
    fn operator_and_store_subcommands_parse() {
        assert!(matches!(
            parse(&["operator", "transfer-leader", "4", "2"])
                .unwrap()
                .command,
            Command::Operator(OperatorCommand::TransferLeader {
                region: 4,
                store: 2
            })
        ));
        assert!(matches!(
            parse(&["operator", "split", "4", "--key", "m"])
                .unwrap()
                .command,
            Command::Operator(OperatorCommand::Split { region: 4, .. })
        ));
        assert!(parse(&["operator", "split", "4"]).is_err());
        assert!(matches!(
            parse(&["store", "delete", "3"]).unwrap().command,
            Command::Store(StoreCommand::Delete { id: 3 })
        ));
        assert!(parse(&["store", "delete", "x"]).is_err());
        assert!(matches!(
            parse(&["store", "cancel-delete", "3"]).unwrap().command,
            Command::Store(StoreCommand::CancelDelete { id: 3 })
        ));
    }
}
