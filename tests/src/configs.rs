//! Configuration files with short timings, so fleets react in seconds rather than minutes.

/// PD config: fast scheduling. `schedule_extra` is appended inside `[schedule]` (keys must not
/// repeat the ones below).
pub fn pd_config(schedule_extra: &str) -> String {
    format!(
        r#"tso-save-interval = "1s"

[schedule]
schedule-interval = "100ms"
store-disconnect-time = "3s"
max-store-down-time = "60s"
leader-operator-timeout = "10s"
peer-operator-timeout = "60s"
split-operator-timeout = "10s"
operator-resend-interval = "500ms"
{schedule_extra}
"#
    )
}

/// Store config: 50 ms raft ticks and sub-second heartbeats. `raftstore_extra` is appended
/// at the end of `[raftstore]` (keys must not repeat the ones below); it may end with a
/// sub-table such as [`size_split_policy`].
pub fn store_config(raftstore_extra: &str) -> String {
    format!(
        r#"[gc]
poll-interval = "200ms"

[raftstore]
raft-base-tick-interval = "50ms"
raft-heartbeat-ticks = 2
raft-election-timeout-ticks = 20
raft-store-max-leader-lease = "800ms"
raft-log-gc-tick-interval = "1s"
store-heartbeat-interval = "200ms"
store-unreachable-timeout = "1s"
split-check-tick-interval = "500ms"
pd-heartbeat-tick-interval = "300ms"
pd-store-heartbeat-tick-interval = "500ms"
max-peer-down-duration = "3s"
disk-low-space-threshold = 67108864
disk-reserve-space = 4194304
{raftstore_extra}
"#
    )
}

/// The `[raftstore.split-policy]` table splitting regions over `max_size` bytes into pieces
/// of about `split_size`.
pub fn size_split_policy(max_size: u64, split_size: u64) -> String {
    format!(
        "\n[raftstore.split-policy]\nkind = \"size\"\nmax-size = {max_size}\nsplit-size = {split_size}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_valid_toml_with_extras_in_place() {
        let store: toml::Table = toml::from_str(&store_config(&format!(
            "raft-entry-max-size = 1024\n{}",
            size_split_policy(256, 128)
        )))
        .unwrap();
        let raftstore = store["raftstore"].as_table().unwrap();
        assert_eq!(raftstore["raft-entry-max-size"].as_integer(), Some(1024));
        assert_eq!(raftstore["split-policy"]["kind"].as_str(), Some("size"));
        let pd: toml::Table = toml::from_str(&pd_config("max-replicas = 3")).unwrap();
        assert_eq!(pd["schedule"]["max-replicas"].as_integer(), Some(3));
    }
}
