//! Turning a leader's region report into what the tree keeps, and checking it is well formed.

use proto::metapb::{self, Peer};
use proto::pdpb::RegionHeartbeatRequest;

use super::flow_rate::RegionFlow;
use super::region_tree::{RegionInfo, RegionTree};
use crate::error::{Error, Result};

/// What happened to a region report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionUpdate {
    /// Applied; `meta_changed` says whether range, epoch, peers or leader changed.
    Accepted { meta_changed: bool },
    /// Older than what PD knows; ignored.
    Stale(String),
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// Checks what every region report must have: an id, an epoch, peers, a non-empty range.
pub fn check_region_meta(meta: &metapb::Region) -> Result<()> {
    if meta.id == 0 || meta.region_epoch.is_none() || meta.peers.is_empty() {
        return Err(invalid(format!(
            "region {} lacks an id, an epoch or peers",
            meta.id
        )));
    }
    if !meta.end_key.is_empty() && meta.start_key >= meta.end_key {
        return Err(invalid(format!(
            "region {} has an empty or inverted range",
            meta.id
        )));
    }
    Ok(())
}

/// The region a heartbeat describes. The region must pass `check_region_meta`, and the sender
/// must be one of its peers.
pub fn region_from_heartbeat(req: &RegionHeartbeatRequest) -> Result<RegionInfo> {
    let meta = req
        .region
        .clone()
        .ok_or_else(|| invalid("region heartbeat without a region".into()))?;
    check_region_meta(&meta)?;
    let leader = req
        .leader
        .ok_or_else(|| invalid(format!("region {} heartbeat without a leader", meta.id)))?;
    if !meta.peers.iter().any(|p| p.id == leader.id) {
        return Err(invalid(format!(
            "region {} heartbeat from peer {} which is not a member",
            meta.id, leader.id
        )));
    }
    Ok(RegionInfo {
        meta,
        leader: Some(leader),
        down_peers: req.down_peers.clone(),
        pending_peers: req.pending_peers.clone(),
        approximate_size: req.approximate_size,
        approximate_keys: req.approximate_keys,
        term: req.term,
        bytes_written: req.bytes_written,
        keys_written: req.keys_written,
        bytes_read: req.bytes_read,
        keys_read: req.keys_read,
        flow: RegionFlow::reported(req),
    })
}

/// For a region produced by a split, the peer most likely to lead it: the one on the store that
/// led the region it came from (split regions start with their leader on the same store).
pub fn guess_leader(tree: &RegionTree, region: &RegionInfo) -> Option<Peer> {
    tree.overlapping(region.start_key(), region.end_key())
        .into_iter()
        .filter_map(|id| tree.get(id))
        .filter_map(|parent| parent.leader_store_id())
        .find_map(|store| region.peer_on_store(store).copied())
}

#[cfg(test)]
mod tests {
    use proto::metapb::RegionEpoch;

    use super::*;

    fn peer(id: u64, store_id: u64) -> Peer {
        Peer {
            id,
            store_id,
            ..Default::default()
        }
    }

    fn request(peers: Vec<Peer>, leader: Option<Peer>) -> RegionHeartbeatRequest {
        RegionHeartbeatRequest {
            region: Some(metapb::Region {
                id: 5,
                start_key: b"a".to_vec(),
                end_key: b"c".to_vec(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers,
            }),
            leader,
            approximate_size: 77,
            ..Default::default()
        }
    }

    #[test]
    fn well_formed_heartbeats_become_region_info() {
        let info = region_from_heartbeat(&request(vec![peer(6, 1)], Some(peer(6, 1)))).unwrap();
        assert_eq!(info.id(), 5);
        assert_eq!(info.approximate_size, 77);
        assert_eq!(info.leader_store_id(), Some(1));
    }

    #[test]
    fn malformed_heartbeats_are_refused() {
        assert!(region_from_heartbeat(&RegionHeartbeatRequest::default()).is_err());
        assert!(region_from_heartbeat(&request(vec![peer(6, 1)], None)).is_err());
        assert!(region_from_heartbeat(&request(vec![peer(6, 1)], Some(peer(7, 2)))).is_err());
        let mut no_epoch = request(vec![peer(6, 1)], Some(peer(6, 1)));
        no_epoch.region.as_mut().unwrap().region_epoch = None;
        assert!(region_from_heartbeat(&no_epoch).is_err());
        let mut inverted = request(vec![peer(6, 1)], Some(peer(6, 1)));
        inverted.region.as_mut().unwrap().end_key = b"a".to_vec();
        assert!(region_from_heartbeat(&inverted).is_err());
    }

    #[test]
    fn split_children_inherit_the_parent_leader_store() {
        let mut tree = RegionTree::new();
        let parent =
            region_from_heartbeat(&request(vec![peer(6, 1), peer(7, 2)], Some(peer(7, 2))))
                .unwrap();
        tree.insert(parent);
        let mut child = RegionInfo::new(
            metapb::Region {
                id: 9,
                start_key: b"b".to_vec(),
                end_key: b"c".to_vec(),
                peers: vec![peer(10, 1), peer(11, 2)],
                ..Default::default()
            },
            None,
        );
        assert_eq!(guess_leader(&tree, &child), Some(peer(11, 2)));
        child.meta.start_key = b"x".to_vec();
        child.meta.end_key = b"y".to_vec();
        assert_eq!(guess_leader(&tree, &child), None);
    }
}
