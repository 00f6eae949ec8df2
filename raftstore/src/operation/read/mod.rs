//! Serving reads, every path in one folder:
//!
//! - `local`: a leader inside its lease answers at once, on the poller (`Peer::propose_read`)
//!   or on the caller's thread (`LocalReader`, through the region's read delegate);
//! - `read_index`: otherwise the leader confirms with a quorum that it still leads, then
//!   answers once it has applied up to the commit index it saw (`queue` holds the waiting
//!   reads);
//! - `lease`: the leader lease both paths rely on, and its lock-free mirror;
//! - `delegate`: what a caller-thread read knows about a region's peer.
//!
//! Either way the read itself is `execute_read` on a snapshot of the region's data.

pub mod delegate;
pub mod lease;
pub mod local;
pub mod queue;
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
use crate::msg::{CmdResponse, ReadRecorder, RegionSnapshot};
use crate::operation::read::delegate::ReadDelegate;
use crate::stats::{Flow, StoreFlow};
use crate::util;

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
/// caller are not counted here: what is read from them is unknown, so the caller counts it
/// through the recorder [`with_read_recorder`] attaches.
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

/// Lets the caller of a snapshot read count what it reads toward `delegate`'s region and
/// `store`'s read flow.
pub fn with_read_recorder(
    mut resp: CmdResponse,
    delegate: &Arc<ReadDelegate>,
    store: &Arc<StoreFlow>,
) -> CmdResponse {
    if let Some(snap) = resp.snapshot.as_mut() {
        snap.read_recorder = Some(ReadRecorder {
            region: delegate.clone(),
            store: store.clone(),
        });
    }
    resp
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
            term,
            read_recorder: None,
        }),
    })
}
