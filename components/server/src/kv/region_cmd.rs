//! Sends commands to the region named in a request's context through raftstore and waits for
//! the answer: linearizable snapshots for reads, one raft entry per write request.

use std::time::Duration;

use proto::errorpb;
use proto::kvrpcpb::Context;
use proto::raft_cmdpb::{
    CmdType, DeleteRangeRequest, DeleteRequest, PutRequest, RaftCmdRequest, RaftRequestHeader,
    Request, SnapRequest,
};
use raftstore::RegionSnapshot;
use raftstore::{Callback, CmdResponse, Store};

use super::answer_relay;
use super::errors::KvError;

/// The raft header addressing the region, peer and epoch the client believes in. `term` is
/// the term of the snapshot a write was computed from (0: the write read nothing).
fn header(ctx: &Context, term: u64) -> RaftRequestHeader {
    RaftRequestHeader {
        region_id: ctx.region_id,
        peer: ctx.peer,
        region_epoch: ctx.region_epoch,
        term,
        ..Default::default()
    }
}

/// Proposes `request` and waits for its outcome, up to `timeout` if one is given. A region
/// error in the response comes back as `KvError::Region`.
async fn call(
    store: &Store,
    request: RaftCmdRequest,
    timeout: Option<Duration>,
) -> Result<CmdResponse, KvError> {
    let region_id = request.header.as_ref().map_or(0, |h| h.region_id);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let route = answer_relay::for_this_runtime();
    store.propose(
        request,
        Callback::new(move |resp| answer_relay::deliver(route.as_ref(), tx, resp)),
    );
    let answered = match timeout {
        Some(limit) => tokio::time::timeout(limit, rx)
            .await
            .map_err(|_| timed_out(region_id, limit))?,
        None => rx.await,
    };
    // The callback was dropped unanswered: the store is stopping.
    let resp = answered.map_err(|_| {
        region_message(format!(
            "store is shutting down; region {region_id} did not answer"
        ))
    })?;
    if let Some(err) = resp.response.header.as_ref().and_then(|h| h.error.clone()) {
        return Err(err.into());
    }
    Ok(resp)
}

/// The answer to a request the region did not serve in time. Not ServerIsBusy, which clients
/// do not retry: the usual cause is a region without a leader, which a retry after refreshing
/// the region resolves.
pub fn timed_out(region_id: u64, limit: Duration) -> KvError {
    region_message(format!(
        "server is busy: region {region_id} did not answer within {limit:?}, \
         it may be electing a leader"
    ))
}

/// A region error that carries only a message; clients refresh the region and retry.
fn region_message(message: String) -> KvError {
    errorpb::Error {
        message,
        ..Default::default()
    }
    .into()
}

/// A consistent snapshot of the region's data, taken by its leader under a valid lease or
/// after a ReadIndex round, together with the region as of that moment.
pub async fn snapshot(
    store: &Store,
    ctx: &Context,
    timeout: Duration,
) -> Result<RegionSnapshot, KvError> {
    let request = RaftCmdRequest {
        header: Some(header(ctx, 0)),
        requests: vec![Request {
            cmd_type: CmdType::Snap as i32,
            snap: Some(SnapRequest {}),
            ..Default::default()
        }],
        admin_request: None,
    };
    call(store, request, Some(timeout))
        .await?
        .snapshot
        .ok_or_else(|| KvError::Internal("the store answered a read without a snapshot".into()))
}

/// Proposes `requests` as one raft entry (atomic within the region) and waits until it is
/// applied, or `timeout` passes. `read_term` is the `RegionSnapshot::term` of the snapshot
/// the requests were computed from, or 0 for a blind write; a leader whose term moved on by
/// more than one since refuses the write with a `StaleCommand` region error.
pub async fn write(
    store: &Store,
    ctx: &Context,
    read_term: u64,
    requests: Vec<Request>,
    timeout: Duration,
) -> Result<(), KvError> {
    propose_write(store, ctx, read_term, requests, Some(timeout)).await
}

/// Like `write`, but waits for raftstore's answer however long it takes, so a caller holding
/// latches knows the write is no longer in flight when it releases them. Raftstore answers
/// every proposal once its region commits past it (applied or superseded), or drops it when
/// the store stops.
pub async fn write_until_answered(
    store: &Store,
    ctx: &Context,
    read_term: u64,
    requests: Vec<Request>,
) -> Result<(), KvError> {
    propose_write(store, ctx, read_term, requests, None).await
}

async fn propose_write(
    store: &Store,
    ctx: &Context,
    read_term: u64,
    requests: Vec<Request>,
    timeout: Option<Duration>,
) -> Result<(), KvError> {
    if requests.is_empty() {
        return Ok(());
    }
    let request = RaftCmdRequest {
        header: Some(header(ctx, read_term)),
        requests,
        admin_request: None,
    };
    call(store, request, timeout).await.map(|_| ())
}

/// Writes `value` under encoded `key`.
pub fn put(cf: &str, key: Vec<u8>, value: Vec<u8>) -> Request {
    Request {
        cmd_type: CmdType::Put as i32,
        put: Some(PutRequest {
            cf: cf.to_string(),
            key,
            value,
        }),
        ..Default::default()
    }
}

/// Deletes encoded `key`.
pub fn delete(cf: &str, key: Vec<u8>) -> Request {
    Request {
        cmd_type: CmdType::Delete as i32,
        delete: Some(DeleteRequest {
            cf: cf.to_string(),
            key,
        }),
        ..Default::default()
    }
}

/// Deletes the encoded range `[start, end)`.
pub fn delete_range(cf: &str, start: Vec<u8>, end: Vec<u8>) -> Request {
    Request {
        cmd_type: CmdType::DeleteRange as i32,
        delete_range: Some(DeleteRangeRequest {
            cf: cf.to_string(),
            start_key: start,
            end_key: end,
        }),
        ..Default::default()
    }
}
