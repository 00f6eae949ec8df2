//! Lease reads, both inside the peer and on the caller's thread through `LocalReader`.

use std::sync::Arc;
use std::time::Instant;

use engine::KvEngine;
use parking_lot::Mutex;
use proto::raft_cmdpb::RaftCmdRequest;

use crate::context::PollContext;
use crate::msg::{Callback, CmdResponse};
use crate::operation::read::delegate::ReadDelegate;
use crate::peer::Peer;
use crate::stats::StoreFlow;
use crate::store_meta::StoreMeta;

impl Peer {
    /// True if this leader may answer reads from its own state right now.
    pub fn can_read_locally(&self, now: Instant) -> bool {
        self.is_leader()
            && self.storage().applied_term() == self.term()
            && !self.is_splitting()
            && !self.is_merging()
            && self.lease.is_valid(self.term(), now)
    }

    /// A split is committed but not yet applied here (see `last_committed_split_idx`).
    pub(crate) fn is_splitting(&self) -> bool {
        self.last_committed_split_idx > self.storage().applied_index()
    }

    /// Renews the lease from `sent` (the send time of something a quorum acknowledged). The
    /// mirror local readers use stays expired while a split is pending.
    pub(crate) fn renew_lease(&mut self, sent: Instant, term: u64) {
        self.lease.renew(sent, term, &self.read_delegate.lease);
        if self.is_splitting() || self.is_merging() {
            self.read_delegate.lease.expire();
        }
    }

    /// Serves a read: locally within the lease, otherwise by ReadIndex.
    pub fn propose_read(&mut self, ctx: &mut PollContext, req: RaftCmdRequest, cb: Callback) {
        let quorum = req.header.as_ref().is_some_and(|h| h.read_quorum);
        if !quorum && self.can_read_locally(Instant::now()) {
            let region = Arc::new(self.region().clone());
            let snap = ctx.kv.snapshot();
            let resp = super::execute_read(&snap, &region, &req, self.term());
            self.record_read(ctx, super::read_flow(&req, &resp));
            let resp = super::with_read_recorder(resp, &self.read_delegate, &ctx.flow);
            cb.invoke(resp);
            return;
        }
        self.read_index(req, cb);
    }
}

/// Serves lease reads on the caller's thread, so reads on a busy store skip the pollers.
#[derive(Clone)]
pub struct LocalReader {
    store_id: u64,
    kv: KvEngine,
    store_meta: Arc<Mutex<StoreMeta>>,
    flow: Arc<StoreFlow>,
}

impl LocalReader {
    pub fn new(
        store_id: u64,
        kv: KvEngine,
        store_meta: Arc<Mutex<StoreMeta>>,
        flow: Arc<StoreFlow>,
    ) -> LocalReader {
        LocalReader {
            store_id,
            kv,
            store_meta,
            flow,
        }
    }

    fn delegate(&self, region_id: u64) -> Option<Arc<ReadDelegate>> {
        self.store_meta.lock().readers.get(&region_id).cloned()
    }

    /// Answers the read if the local peer is a leader inside its lease; `None` means the
    /// request must go to the peer (which will use ReadIndex or report the right error).
    pub fn try_read(&self, req: &RaftCmdRequest) -> Option<CmdResponse> {
        let header = req.header.as_ref()?;
        if header.read_quorum {
            return None;
        }
        let peer = header.peer.as_ref()?;
        if peer.store_id != self.store_id {
            return None;
        }
        let delegate = self.delegate(header.region_id)?;
        if delegate.peer_id != peer.id || !delegate.can_read_locally(Instant::now()) {
            return None;
        }
        if let Some(key) = crate::operation::propose::first_key(req) {
            delegate.record_access(key);
        }
        let region = delegate.region();
        // An epoch mismatch goes to the peer, which answers with the authoritative error.
        crate::util::check_region_epoch(req, &region).ok()?;
        let snap = self.kv.snapshot();
        let term = delegate.term();
        let resp = super::execute_read(&snap, &region, req, term);
        // The lease must still have been valid when the snapshot was taken.
        if !delegate.can_read_locally(Instant::now()) {
            return None;
        }
        let flow = super::read_flow(req, &resp);
        delegate.record_read(flow);
        self.flow.read.add(flow.bytes, flow.keys);
        Some(super::with_read_recorder(resp, &delegate, &self.flow))
    }
}
