//! Applying a membership change: the new region is written with the data of the same batch;
//! raft-rs learns the change when the peer handles the result.

use engine::{KvWriteBatch, CF_RAFT};
use prost::Message as _;
use proto::eraftpb::{ConfChangeV2, Entry};
use proto::metapb::Region;
use proto::raft_cmdpb::{
    AdminCmdType, AdminResponse, ChangePeerV2Response, RaftCmdRequest, RaftCmdResponse,
    RaftResponseHeader,
};
use proto::raft_serverpb::{PeerState, RegionLocalState};

use super::ExecResult;
use crate::conf_change::region_after;
use crate::errors::{Error, Result};
use crate::util;

pub fn exec_conf_change(
    wb: &mut KvWriteBatch,
    region: &Region,
    entry: &Entry,
) -> Result<(RaftCmdResponse, Option<ExecResult>)> {
    crate::failpoint!(crate::failpoints::CONF_CHANGE_APPLY);
    let cc = proto::parse_raft::<ConfChangeV2>(&entry.data)?;
    let req = RaftCmdRequest::decode(&entry.context[..])?;
    util::check_region_epoch(&req, region)?;
    let changes = req
        .admin_request
        .as_ref()
        .and_then(|a| a.change_peer_v2.as_ref())
        .map(|c| c.changes.clone())
        .ok_or_else(|| Error::InvalidRequest("membership change without changes".into()))?;
    let new_region = region_after(region, &changes)?;
    wb.put_msg_cf(
        CF_RAFT,
        &keys::region_state_key(region.id),
        &RegionLocalState {
            state: PeerState::Normal as i32,
            region: Some(new_region.clone()),
        },
    )?;
    let resp = RaftCmdResponse {
        header: Some(RaftResponseHeader::default()),
        responses: vec![],
        admin_response: Some(AdminResponse {
            cmd_type: AdminCmdType::ChangePeerV2 as i32,
            change_peer_v2: Some(ChangePeerV2Response {
                region: Some(new_region.clone()),
            }),
            ..Default::default()
        }),
    };
    Ok((
        resp,
        Some(ExecResult::ChangePeer {
            cc,
            region: new_region,
        }),
    ))
}
