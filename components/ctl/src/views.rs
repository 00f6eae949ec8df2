//! Renders PD's view of the cluster as text. Pure functions of the parsed JSON so the output
//! is testable without a cluster.

use std::collections::BTreeMap;

use crate::human;
use crate::keyfmt::{display_region_boundary, Boundary};
use crate::model::{OperatorInfo, PeerInfo, RegionInfo, RegionsSummary, StoreInfo};
use crate::table::{Align, Table};

/// The stores table: identity, state, load and heartbeat age.
pub fn stores_table(stores: &[StoreInfo], now_secs: u64) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("ADDRESS", Align::Left),
        ("STATE", Align::Left),
        ("REGIONS", Align::Right),
        ("LEADERS", Align::Right),
        ("CAPACITY", Align::Right),
        ("AVAILABLE", Align::Right),
        ("USED", Align::Right),
        ("HEARTBEAT", Align::Left),
    ]);
    let mut sorted: Vec<&StoreInfo> = stores.iter().collect();
    sorted.sort_by_key(|s| s.store.id);
    for s in sorted {
        table.push(vec![
            s.store.id.to_string(),
            s.store.address.clone(),
            s.store.state_name.clone(),
            s.status.region_count.to_string(),
            s.status.leader_count.to_string(),
            human::optional_bytes(s.status.capacity.as_ref()),
            human::optional_bytes(s.status.available.as_ref()),
            human::optional_bytes(s.status.used_size.as_ref()),
            human::heartbeat_age(&s.status.last_heartbeat_ts, now_secs),
        ]);
    }
    table.render()
}

/// `peer@store(role)` for each peer, with the leader starred: `4@s1(Voter)*,5@s2(Learner)`.
fn peers_cell(region: &RegionInfo) -> String {
    let leader_id = region.leader.as_ref().map(|l| l.id);
    region
        .peers
        .iter()
        .map(|p| {
            let star = if Some(p.id) == leader_id { "*" } else { "" };
            format!("{}@s{}({}){star}", p.id, p.store_id, role(p))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn role(peer: &PeerInfo) -> &str {
    if peer.role_name.is_empty() {
        "Voter"
    } else {
        &peer.role_name
    }
}

fn leader_cell(region: &RegionInfo) -> String {
    match &region.leader {
        Some(leader) if leader.store_id != 0 => leader.store_id.to_string(),
        _ => "none".to_string(),
    }
}

/// The regions table, sorted by start key (hex of encoded keys sorts like the keys).
pub fn regions_table(regions: &[RegionInfo]) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("START", Align::Left),
        ("END", Align::Left),
        ("VER", Align::Right),
        ("CONF", Align::Right),
        ("PEERS", Align::Left),
        ("LEADER", Align::Right),
        ("SIZE", Align::Right),
        ("KEYS", Align::Right),
    ]);
    let mut sorted: Vec<&RegionInfo> = regions.iter().collect();
    sorted.sort_by(|a, b| a.start_key.cmp(&b.start_key));
    for r in sorted {
        table.push(vec![
            r.id.to_string(),
            display_region_boundary(&r.start_key, Boundary::Start),
            display_region_boundary(&r.end_key, Boundary::End),
            r.epoch.version.to_string(),
            r.epoch.conf_ver.to_string(),
            peers_cell(r),
            leader_cell(r),
            human::bytes(r.approximate_size),
            r.approximate_keys.to_string(),
        ]);
    }
    table.render()
}

/// One-paragraph totals: stores by state, regions, leaderless regions, data size and keys.
pub fn totals(stores: &[StoreInfo], regions: &RegionsSummary) -> String {
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for s in stores {
        *by_state.entry(s.store.state_name.as_str()).or_default() += 1;
    }
    let states: Vec<String> = by_state.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!(
        "stores: {} ({})\nregions: {} ({} peers, {} without leader)\ndata: {} in about {} keys\n",
        stores.len(),
        if states.is_empty() {
            "none".to_string()
        } else {
            states.join(", ")
        },
        regions.count,
        regions.peers,
        regions.leaderless,
        human::bytes(regions.approximate_size),
        regions.approximate_keys
    )
}

/// Everything known about one region, one field per line.
pub fn region_details(r: &RegionInfo) -> String {
    let mut out = String::new();
    out.push_str(&format!("region {}\n", r.id));
    out.push_str(&format!(
        "  range:    [{}, {})\n",
        display_region_boundary(&r.start_key, Boundary::Start),
        display_region_boundary(&r.end_key, Boundary::End)
    ));
    out.push_str(&format!(
        "  encoded:  [{}, {})\n",
        hex_or_dash(&r.start_key),
        hex_or_dash(&r.end_key)
    ));
    out.push_str(&format!(
        "  epoch:    version {} conf_ver {}\n",
        r.epoch.version, r.epoch.conf_ver
    ));
    out.push_str(&format!("  leader:   {}\n", leader_line(r)));
    out.push_str("  peers:\n");
    for p in &r.peers {
        out.push_str(&format!(
            "    peer {} on store {} ({})\n",
            p.id,
            p.store_id,
            role(p)
        ));
    }
    out.push_str(&format!(
        "  size:     {} ({} keys, approximate)\n",
        human::bytes(r.approximate_size),
        r.approximate_keys
    ));
    out.push_str(&format!(
        "  down peers: {}  pending peers: {}\n",
        r.down_peers.len(),
        r.pending_peers.len()
    ));
    out
}

/// Operators: region, kind, status, progress through the steps, and what it is for.
pub fn operators_table(operators: &[OperatorInfo]) -> String {
    if operators.is_empty() {
        return "no operators\n".to_string();
    }
    let mut table = Table::new(&[
        ("REGION", Align::Right),
        ("KIND", Align::Left),
        ("STATUS", Align::Left),
        ("STEP", Align::Left),
        ("DESC", Align::Left),
    ]);
    for op in operators {
        let step = match &op.current_step {
            Some(step) => format!("{}/{} {step}", op.current_step_index + 1, op.steps.len()),
            None => format!("{}/{}", op.current_step_index, op.steps.len()),
        };
        let desc = match &op.reason {
            Some(reason) => format!("{} ({reason})", op.desc),
            None => op.desc.clone(),
        };
        table.push(vec![
            op.region_id.to_string(),
            op.kind.clone(),
            op.status.clone(),
            step,
            desc,
        ]);
    }
    table.render()
}

fn hex_or_dash(hex_key: &str) -> &str {
    if hex_key.is_empty() {
        "-"
    } else {
        hex_key
    }
}

fn leader_line(r: &RegionInfo) -> String {
    match &r.leader {
        Some(l) if l.store_id != 0 => format!("peer {} on store {}", l.id, l.store_id),
        _ => "none (no leader reported yet)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfmt::pd_hex_for_user_key;
    use crate::model::{Quantity, RegionEpoch, StoreMeta, StoreStatus};

    fn store(id: u64, state: &str, regions: u64) -> StoreInfo {
        StoreInfo {
            store: StoreMeta {
                id,
                address: format!("127.0.0.1:2016{id}"),
                state_name: state.into(),
                ..Default::default()
            },
            status: StoreStatus {
                capacity: Some(Quantity::Number(10 * 1024 * 1024 * 1024)),
                available: Some(Quantity::Number(5 * 1024 * 1024 * 1024)),
                used_size: Some(Quantity::Number(2048)),
                region_count: regions,
                leader_count: 1,
                last_heartbeat_ts: Quantity::Number(1_000),
            },
        }
    }

    fn region(id: u64, start: &[u8], end: Option<&[u8]>, leader_store: Option<u64>) -> RegionInfo {
        let peers: Vec<PeerInfo> = (1..=3)
            .map(|s| PeerInfo {
                id: id * 10 + s,
                store_id: s,
                role_name: "Voter".into(),
            })
            .collect();
        let leader = leader_store.map(|s| PeerInfo {
            id: id * 10 + s,
            store_id: s,
            role_name: "Voter".into(),
        });
        RegionInfo {
            id,
            start_key: pd_hex_for_user_key(start),
            end_key: end.map(pd_hex_for_user_key).unwrap_or_default(),
            epoch: RegionEpoch {
                conf_ver: 5,
                version: 2,
            },
            peers,
            leader,
            approximate_size: 3 * 1024 * 1024,
            approximate_keys: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn stores_table_is_sorted_by_id_with_human_sizes() {
        let out = stores_table(&[store(2, "Up", 4), store(1, "Offline", 3)], 1_060);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  ADDRESS"));
        assert!(lines[1].starts_with(" 1  127.0.0.1:20161  Offline"));
        assert!(lines[1].contains("10.0 GiB"));
        assert!(lines[1].contains("5.0 GiB"));
        assert!(lines[1].contains("2.0 KiB"));
        assert!(lines[1].ends_with("1m00s ago"));
        assert!(lines[2].starts_with(" 2  127.0.0.1:20162  Up"));
    }

    #[test]
    fn sizes_pd_does_not_know_show_as_a_dash() {
        let mut tombstone = store(3, "Tombstone", 0);
        tombstone.status.capacity = None;
        tombstone.status.available = None;
        tombstone.status.used_size = None;
        let out = stores_table(&[tombstone], 1_060);
        let row = out.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            &cells[..8],
            ["3", "127.0.0.1:20163", "Tombstone", "0", "1", "-", "-", "-"]
        );
        assert!(!row.contains(" 0 B"), "{row}");
    }

    #[test]
    fn regions_table_decodes_keys_and_marks_the_leader() {
        let out = regions_table(&[
            region(7, b"m", None, None),
            region(3, b"a", Some(b"m"), Some(2)),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("r\\x00\\x00\\x00a"));
        assert!(lines[1].contains("r\\x00\\x00\\x00m"));
        assert!(lines[1].contains("32@s2(Voter)*"));
        assert!(lines[1].contains("3.0 MiB"));
        assert!(lines[2].contains("+inf"));
        assert!(lines[2].contains("none"));
    }

    #[test]
    fn totals_count_states_and_leaderless_regions() {
        let out = totals(
            &[
                store(1, "Up", 1),
                store(2, "Up", 1),
                store(3, "Tombstone", 0),
            ],
            &RegionsSummary {
                count: 2,
                peers: 6,
                leaderless: 1,
                approximate_size: 6 << 20,
                approximate_keys: 2000,
            },
        );
        assert!(out.contains("stores: 3 (1 Tombstone, 2 Up)"));
        assert!(out.contains("regions: 2 (6 peers, 1 without leader)"));
        assert!(out.contains("6.0 MiB in about 2000 keys"));
    }

    #[test]
    fn region_details_show_range_epoch_and_peers() {
        let out = region_details(&region(3, b"a", Some(b"m"), Some(2)));
        assert!(out.starts_with("region 3\n"));
        assert!(out.contains("range:    [r\\x00\\x00\\x00a, r\\x00\\x00\\x00m)"));
        assert!(out.contains("epoch:    version 2 conf_ver 5"));
        assert!(out.contains("leader:   peer 32 on store 2"));
        assert!(out.contains("peer 33 on store 3 (Voter)"));
    }

    #[test]
    fn operators_table_shows_progress_and_reasons() {
        assert_eq!(operators_table(&[]), "no operators\n");
        let out = operators_table(&[
            OperatorInfo {
                region_id: 4,
                kind: "transfer-leader".into(),
                desc: "admin".into(),
                steps: vec!["transfer leader to store 2".into()],
                current_step: Some("transfer leader to store 2".into()),
                status: "running".into(),
                ..Default::default()
            },
            OperatorInfo {
                region_id: 5,
                kind: "add-peer".into(),
                desc: "admin".into(),
                steps: vec!["a".into(), "b".into()],
                current_step_index: 1,
                status: "cancelled".into(),
                reason: Some("timed out".into()),
                ..Default::default()
            },
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].contains("1/1 transfer leader to store 2"), "{out}");
        assert!(lines[2].contains("cancelled"));
        assert!(lines[2].contains("admin (timed out)"));
    }
}
