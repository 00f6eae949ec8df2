//! Applying `BatchSplit`: the region keeps the rightmost range and new regions take the
//! ranges on its left; every new region's state is written in the same batch as the data.

use engine::{KvWriteBatch, CF_RAFT};
use proto::metapb::{Peer, Region};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, AdminResponse, BatchSplitResponse, RaftCmdResponse,
    RaftResponseHeader,
};
use proto::raft_serverpb::{PeerState, RegionLocalState};

use super::ExecResult;
use crate::errors::{Error, Result};
use crate::peer::storage::initial_apply_state;
use crate::split_policy::validate_split_keys;

pub fn exec_batch_split(
    wb: &mut KvWriteBatch,
    region: &Region,
    admin: &AdminRequest,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    crate::failpoint!(crate::failpoints::SPLIT_APPLY);
    let splits = admin
        .splits
        .as_ref()
        .ok_or_else(|| Error::InvalidRequest("batch split without requests".into()))?;
    let keys: Vec<Vec<u8>> = splits
        .requests
        .iter()
        .map(|r| r.split_key.clone())
        .collect();
    validate_split_keys(region, &keys).map_err(Error::InvalidRequest)?;
    for r in &splits.requests {
        if r.new_peer_ids.len() != region.peers.len() {
            return Err(Error::InvalidRequest(format!(
                "split needs {} peer ids, got {}",
                region.peers.len(),
                r.new_peer_ids.len()
            )));
        }
    }
    let mut derived = region.clone();
    let mut epoch = derived.region_epoch.unwrap_or_default();
    epoch.version += splits.requests.len() as u64;
    derived.region_epoch = Some(epoch);

    let mut regions = Vec::with_capacity(splits.requests.len());
    let mut start = region.start_key.clone();
    for r in &splits.requests {
        let peers = region
            .peers
            .iter()
            .zip(&r.new_peer_ids)
            .map(|(p, id)| Peer {
                id: *id,
                store_id: p.store_id,
                role: p.role,
                is_witness: p.is_witness,
            })
            .collect();
        regions.push(Region {
            id: r.new_region_id,
            start_key: start,
            end_key: r.split_key.clone(),
            region_epoch: Some(epoch),
            peers,
        });
        start = r.split_key.clone();
    }
    derived.start_key = start;

    let state = |r: &Region| RegionLocalState {
        state: PeerState::Normal as i32,
        region: Some(r.clone()),
    };
    wb.put_msg_cf(
        CF_RAFT,
        &keys::region_state_key(derived.id),
        &state(&derived),
    )?;
    for r in &regions {
        wb.put_msg_cf(CF_RAFT, &keys::region_state_key(r.id), &state(r))?;
        wb.put_msg_cf(
            CF_RAFT,
            &keys::apply_state_key(r.id),
            &initial_apply_state(),
        )?;
    }
    let mut all = regions.clone();
    all.push(derived.clone());
    let resp = RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(AdminResponse {
            cmd_type: AdminCmdType::BatchSplit as i32,
            splits: Some(BatchSplitResponse { regions: all }),
            ..Default::default()
        }),
    };
    Ok((resp, Some(ExecResult::SplitRegion { derived, regions })))
}
