//! Serving reads: from the lease (no raft round trip) or after a ReadIndex confirmation.

pub mod lease;
pub mod read_index;

use std::sync::Arc;

use engine::KvRead;
use engine::KvSnapshot;
use proto::metapb::Region;
use proto::raft_cmdpb::{
    CmdType, GetResponse, RaftCmdRequest, RaftCmdResponse, RaftResponseHeader, Response,
    SnapResponse,
};

use crate::errors::{err_resp, Result};
use crate::msg::{CmdResponse, RegionSnapshot};
use crate::stats::Flow;
use crate::util;

pub use read_index::{ReadIndexQueue, ReadIndexRequest};

/// Executes a read-only command against a snapshot of the region's data.
pub fn execute_read(
    snapshot: &KvSnapshot,
    region: &Arc<Region>,
    req: &RaftCmdRequest,
    term: u64,
) -> CmdResponse {
    match try_execute_read(snapshot, region, req, term) {
        Ok(resp) => resp,
        Err(e) => CmdResponse::new(err_resp(e, term)),
    }
}

/// Bytes (key + value) and keys a read returned, for flow statistics. Snapshots handed to the
/// caller are not counted: what is read from them is unknown here.
pub fn read_flow(req: &RaftCmdRequest, resp: &CmdResponse) -> Flow {
    let mut flow = Flow::default();
    for (r, out) in req.requests.iter().zip(&resp.response.responses) {
        if let (Some(get), Some(got)) = (r.get.as_ref(), out.get.as_ref()) {
            flow.keys += 1;
            flow.bytes += (get.key.len() + got.value.len()) as u64;
        }
    }
    flow
}

fn try_execute_read(
    snapshot: &KvSnapshot,
    region: &Arc<Region>,
    req: &RaftCmdRequest,
    term: u64,
) -> Result<CmdResponse> {
    util::check_region_epoch(req, region)?;
    util::check_keys_in_region(req, region)?;
    let mut responses = Vec::with_capacity(req.requests.len());
    let mut want_snapshot = false;
    for r in &req.requests {
        let mut resp = Response {
            cmd_type: r.cmd_type,
            ..Default::default()
        };
        match r.cmd_type() {
            CmdType::Get => {
                let get = r.get.clone().unwrap_or_default();
                let cf = util::cf_or_default(&get.cf)?;
                let value = snapshot.get_value_cf(cf, &keys::data_key(&get.key))?;
                resp.get = Some(GetResponse {
                    not_found: value.is_none(),
                    value: value.unwrap_or_default(),
                });
            }
            CmdType::Snap => {
                want_snapshot = true;
                resp.snap = Some(SnapResponse {
                    region: Some((**region).clone()),
                });
            }
            _ => unreachable!("only read commands reach the read path"),
        }
        responses.push(resp);
    }
    Ok(CmdResponse {
        response: RaftCmdResponse {
            header: Some(RaftResponseHeader {
                error: None,
                current_term: term,
            }),
            responses,
            admin_response: None,
        },
        snapshot: want_snapshot.then(|| RegionSnapshot {
            snapshot: snapshot.clone(),
            region: region.clone(),
        }),
    })
}
