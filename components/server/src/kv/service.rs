//! The `tikvpb.Tikv` gRPC service: raw RPCs answered by `RawKv`, transactional ones by
//! `TxnKv`, and the store-to-store streams handed to the
//! transport.

use std::path::PathBuf;
use std::sync::Arc;

use proto::errorpb;
use proto::kvrpcpb::*;
use proto::raft_serverpb::{Done, RaftMessageBatch, SnapshotChunk};
use proto::tikvpb::tikv_server::Tikv;
use raftstore::Store;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use super::deadlock_client::{DetectorClient, DetectorUrl};
use super::errors::KvError;
use super::latched::LatchedRunner;
use super::max_ts_sync::TimestampSource;
use super::metrics::RequestTimer;
use super::raw::RawKv;
use super::txn::TxnKv;
use super::wait_for::DeadlockSink;
use super::KvConfig;

/// Serves the client API and the raft streams of one store.
pub struct KvService {
    raw: RawKv,
    txn: TxnKv,
    store: Arc<Store>,
    snap_dir: PathBuf,
}

impl KvService {
    pub fn new(store: Arc<Store>, snap_dir: PathBuf, cfg: KvConfig) -> KvService {
        let latched = LatchedRunner::new(store.clone(), cfg.write_timeout);
        KvService {
            raw: RawKv::new(store.clone(), cfg.clone(), latched.clone()),
            txn: TxnKv::new(store.clone(), cfg, latched),
            store,
            snap_dir,
        }
    }

    /// Async-commit and 1PC prewrites sync max_ts from `source` (PD's TSO) the first time
    /// each region leadership serves one, and reads far ahead of its clock are refused (see
    /// `KvConfig::max_ts_drift_allowance`); without it async-commit and 1PC prewrites are
    /// refused with `MaxTimestampNotSynced`. Must be called inside the tokio runtime that
    /// will serve.
    pub fn with_timestamp_source(mut self, source: TimestampSource) -> KvService {
        self.txn.set_timestamp_source(source);
        self
    }

    /// Reports pessimistic lock waits to the deadlock detector at `url` (PD's current
    /// leader), over one stream kept open in the background; without this, waits that form
    /// a cycle end only by their timeout. Must be called inside the tokio runtime that will
    /// serve.
    /// `tls` is PD's CA and this store's client certificate, when PD speaks TLS.
    pub fn with_deadlock_detector(
        self,
        url: DetectorUrl,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> KvService {
        let queues = &self.txn.lock_waits;
        let sink: Arc<dyn DeadlockSink> = queues.clone();
        queues.set_detector(DetectorClient::start(url, tls, Arc::downgrade(&sink)));
        self
    }
}

/// A raw response's error fields.
trait RawResponse: Default {
    fn set_region_error(&mut self, err: errorpb::Error);
    /// Sets the key error string; false when the response has no such field.
    fn set_key_error(&mut self, msg: String) -> bool;
}

macro_rules! raw_response {
    (with_error: $($t:ty),*) => {$(
        impl RawResponse for $t {
            fn set_region_error(&mut self, err: errorpb::Error) {
                self.region_error = Some(err);
            }
            fn set_key_error(&mut self, msg: String) -> bool {
                self.error = msg;
                true
            }
        }
    )*};
    (without_error: $($t:ty),*) => {$(
        impl RawResponse for $t {
            fn set_region_error(&mut self, err: errorpb::Error) {
                self.region_error = Some(err);
            }
            fn set_key_error(&mut self, _msg: String) -> bool {
                false
            }
        }
    )*};
}

raw_response!(with_error: RawGetResponse, RawPutResponse, RawBatchPutResponse,
    RawDeleteResponse, RawBatchDeleteResponse, RawDeleteRangeResponse, RawCasResponse,
    RawGetKeyTtlResponse);
raw_response!(without_error: RawBatchGetResponse, RawScanResponse, RawBatchScanResponse);

/// Turns a raw RPC's outcome into its gRPC answer: a region error alone, a key error alone,
/// or a status when the response has no field for the failure.
// The result type is the one the generated service trait requires.
#[allow(clippy::result_large_err)]
fn respond<R: RawResponse>(
    method: &'static str,
    timer: RequestTimer,
    result: Result<R, KvError>,
) -> Result<Response<R>, Status> {
    let err = match result {
        Ok(resp) => {
            timer.finish(None);
            return Ok(Response::new(resp));
        }
        Err(e) => e,
    };
    timer.finish(Some(err.kind()));
    match &err {
        KvError::Corrupt(_) | KvError::Internal(_) => {
            warn!(method, error = %err, "raw request failed")
        }
        _ => debug!(method, error = %err, "raw request refused"),
    }
    let key_error = match &err {
        KvError::Key(msg) => Some(msg.clone()),
        KvError::Corrupt(_) => Some(err.to_string()),
        _ => None,
    };
    let mut resp = R::default();
    if let KvError::Region(e) = err {
        resp.set_region_error(*e);
        return Ok(Response::new(resp));
    }
    if let Some(msg) = key_error {
        if resp.set_key_error(msg) {
            return Ok(Response::new(resp));
        }
    }
    Err(err.into_status())
}

/// Answers a raw RPC through `RawKv::$handler`, with metrics.
macro_rules! raw_rpc {
    ($self:ident, $request:ident, $method:literal, $handler:ident) => {{
        let timer = RequestTimer::start($method);
        let result = $self.raw.$handler($request.into_inner()).await;
        respond($method, timer, result)
    }};
}

/// A transactional response's error fields.
trait TxnResponse: Default {
    fn set_region_error(&mut self, err: errorpb::Error);
    fn set_key_error(&mut self, err: KeyError);
}

macro_rules! txn_response {
    (one: $($t:ty),*) => {$(
        impl TxnResponse for $t {
            fn set_region_error(&mut self, err: errorpb::Error) {
                self.region_error = Some(err);
            }
            fn set_key_error(&mut self, err: KeyError) {
                self.error = Some(err);
            }
        }
    )*};
    // Responses whose pairs carry their errors: the key error goes in the response's own
    // field and, as TiKV does for older clients, in one pair of its own. Client 0.4 reads only
    // the pairs' errors; without that pair it would take a refused read for an empty one.
    (pairs: $($t:ty),*) => {$(
        impl TxnResponse for $t {
            fn set_region_error(&mut self, err: errorpb::Error) {
                self.region_error = Some(err);
            }
            fn set_key_error(&mut self, err: KeyError) {
                self.pairs.push(KvPair {
                    error: Some(err.clone()),
                    ..Default::default()
                });
                self.error = Some(err);
            }
        }
    )*};
    (many: $($t:ty),*) => {$(
        impl TxnResponse for $t {
            fn set_region_error(&mut self, err: errorpb::Error) {
                self.region_error = Some(err);
            }
            fn set_key_error(&mut self, err: KeyError) {
                self.errors.push(err);
            }
        }
    )*};
    // Responses that carry their error as text: the abort message, or the whole key error.
    (text: $($t:ty),*) => {$(
        impl TxnResponse for $t {
            fn set_region_error(&mut self, err: errorpb::Error) {
                self.region_error = Some(err);
            }
            fn set_key_error(&mut self, err: KeyError) {
                self.error = if err.abort.is_empty() {
                    format!("{err:?}")
                } else {
                    err.abort
                };
            }
        }
    )*};
}

txn_response!(pairs: BatchGetResponse, ScanResponse);
txn_response!(one: GetResponse, CommitResponse,
    BatchRollbackResponse, TxnHeartBeatResponse, CheckTxnStatusResponse,
    CheckSecondaryLocksResponse, ResolveLockResponse, ScanLockResponse);
txn_response!(many: PrewriteResponse, PessimisticLockResponse, PessimisticRollbackResponse);
txn_response!(text: UnsafeDestroyRangeResponse, MvccGetByKeyResponse);

/// Turns a transactional RPC's outcome into its gRPC answer: a region error alone, or a key
/// error (every refusal a client should see: locked, conflict, malformed request, ...), or a
/// status for storage failures.
// The result type is the one the generated service trait requires.
#[allow(clippy::result_large_err)]
fn respond_txn<R: TxnResponse>(
    method: &'static str,
    timer: RequestTimer,
    result: Result<R, KvError>,
) -> Result<Response<R>, Status> {
    let err = match result {
        Ok(resp) => {
            timer.finish(None);
            return Ok(Response::new(resp));
        }
        Err(e) => e,
    };
    timer.finish(Some(err.kind()));
    let mut resp = R::default();
    match err {
        KvError::Region(e) => resp.set_region_error(*e),
        KvError::Txn(e) => match e.to_key_error() {
            Some(key_error) => resp.set_key_error(key_error),
            None => return Err(KvError::Txn(e).into_status()),
        },
        KvError::Key(msg) | KvError::InvalidArgument(msg) => {
            debug!(method, error = %msg, "transactional request refused");
            resp.set_key_error(KeyError {
                abort: msg,
                ..Default::default()
            });
        }
        other => {
            warn!(method, error = %other, "transactional request failed");
            return Err(other.into_status());
        }
    }
    Ok(Response::new(resp))
}

/// Answers a transactional RPC through `TxnKv::$handler`, with metrics.
macro_rules! txn_rpc {
    ($self:ident, $request:ident, $method:literal, $handler:ident) => {{
        let timer = RequestTimer::start($method);
        let result = $self.txn.$handler($request.into_inner()).await;
        respond_txn($method, timer, result)
    }};
}

#[tonic::async_trait]
impl Tikv for KvService {
    async fn kv_get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        txn_rpc!(self, request, "kv_get", get)
    }

    async fn kv_scan(
        &self,
        request: Request<ScanRequest>,
    ) -> Result<Response<ScanResponse>, Status> {
        txn_rpc!(self, request, "kv_scan", scan)
    }

    async fn kv_prewrite(
        &self,
        request: Request<PrewriteRequest>,
    ) -> Result<Response<PrewriteResponse>, Status> {
        txn_rpc!(self, request, "kv_prewrite", prewrite)
    }

    async fn kv_pessimistic_lock(
        &self,
        request: Request<PessimisticLockRequest>,
    ) -> Result<Response<PessimisticLockResponse>, Status> {
        txn_rpc!(self, request, "kv_pessimistic_lock", pessimistic_lock)
    }

    async fn kv_pessimistic_rollback(
        &self,
        request: Request<PessimisticRollbackRequest>,
    ) -> Result<Response<PessimisticRollbackResponse>, Status> {
        txn_rpc!(
            self,
            request,
            "kv_pessimistic_rollback",
            pessimistic_rollback
        )
    }

    async fn kv_txn_heart_beat(
        &self,
        request: Request<TxnHeartBeatRequest>,
    ) -> Result<Response<TxnHeartBeatResponse>, Status> {
        txn_rpc!(self, request, "kv_txn_heart_beat", txn_heart_beat)
    }

    async fn kv_check_txn_status(
        &self,
        request: Request<CheckTxnStatusRequest>,
    ) -> Result<Response<CheckTxnStatusResponse>, Status> {
        txn_rpc!(self, request, "kv_check_txn_status", check_txn_status)
    }

    async fn kv_check_secondary_locks(
        &self,
        request: Request<CheckSecondaryLocksRequest>,
    ) -> Result<Response<CheckSecondaryLocksResponse>, Status> {
        txn_rpc!(
            self,
            request,
            "kv_check_secondary_locks",
            check_secondary_locks
        )
    }

    async fn kv_commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        txn_rpc!(self, request, "kv_commit", commit)
    }

    async fn kv_batch_get(
        &self,
        request: Request<BatchGetRequest>,
    ) -> Result<Response<BatchGetResponse>, Status> {
        txn_rpc!(self, request, "kv_batch_get", batch_get)
    }

    async fn kv_batch_rollback(
        &self,
        request: Request<BatchRollbackRequest>,
    ) -> Result<Response<BatchRollbackResponse>, Status> {
        txn_rpc!(self, request, "kv_batch_rollback", batch_rollback)
    }

    async fn kv_scan_lock(
        &self,
        request: Request<ScanLockRequest>,
    ) -> Result<Response<ScanLockResponse>, Status> {
        txn_rpc!(self, request, "kv_scan_lock", scan_lock)
    }

    async fn kv_resolve_lock(
        &self,
        request: Request<ResolveLockRequest>,
    ) -> Result<Response<ResolveLockResponse>, Status> {
        txn_rpc!(self, request, "kv_resolve_lock", resolve_lock)
    }

    async fn unsafe_destroy_range(
        &self,
        request: Request<UnsafeDestroyRangeRequest>,
    ) -> Result<Response<UnsafeDestroyRangeResponse>, Status> {
        txn_rpc!(self, request, "unsafe_destroy_range", unsafe_destroy_range)
    }

    async fn mvcc_get_by_key(
        &self,
        request: Request<MvccGetByKeyRequest>,
    ) -> Result<Response<MvccGetByKeyResponse>, Status> {
        txn_rpc!(self, request, "mvcc_get_by_key", mvcc_get_by_key)
    }

    async fn raw_get(
        &self,
        request: Request<RawGetRequest>,
    ) -> Result<Response<RawGetResponse>, Status> {
        raw_rpc!(self, request, "raw_get", get)
    }

    async fn raw_batch_get(
        &self,
        request: Request<RawBatchGetRequest>,
    ) -> Result<Response<RawBatchGetResponse>, Status> {
        raw_rpc!(self, request, "raw_batch_get", batch_get)
    }

    async fn raw_put(
        &self,
        request: Request<RawPutRequest>,
    ) -> Result<Response<RawPutResponse>, Status> {
        raw_rpc!(self, request, "raw_put", put)
    }

    async fn raw_batch_put(
        &self,
        request: Request<RawBatchPutRequest>,
    ) -> Result<Response<RawBatchPutResponse>, Status> {
        raw_rpc!(self, request, "raw_batch_put", batch_put)
    }

    async fn raw_delete(
        &self,
        request: Request<RawDeleteRequest>,
    ) -> Result<Response<RawDeleteResponse>, Status> {
        raw_rpc!(self, request, "raw_delete", delete)
    }

    async fn raw_batch_delete(
        &self,
        request: Request<RawBatchDeleteRequest>,
    ) -> Result<Response<RawBatchDeleteResponse>, Status> {
        raw_rpc!(self, request, "raw_batch_delete", batch_delete)
    }

    async fn raw_scan(
        &self,
        request: Request<RawScanRequest>,
    ) -> Result<Response<RawScanResponse>, Status> {
        raw_rpc!(self, request, "raw_scan", scan)
    }

    async fn raw_delete_range(
        &self,
        request: Request<RawDeleteRangeRequest>,
    ) -> Result<Response<RawDeleteRangeResponse>, Status> {
        raw_rpc!(self, request, "raw_delete_range", delete_range)
    }

    async fn raw_batch_scan(
        &self,
        request: Request<RawBatchScanRequest>,
    ) -> Result<Response<RawBatchScanResponse>, Status> {
        raw_rpc!(self, request, "raw_batch_scan", batch_scan)
    }

    async fn raw_get_key_ttl(
        &self,
        request: Request<RawGetKeyTtlRequest>,
    ) -> Result<Response<RawGetKeyTtlResponse>, Status> {
        raw_rpc!(self, request, "raw_get_key_ttl", get_key_ttl)
    }

    async fn raw_compare_and_swap(
        &self,
        request: Request<RawCasRequest>,
    ) -> Result<Response<RawCasResponse>, Status> {
        raw_rpc!(self, request, "raw_compare_and_swap", compare_and_swap)
    }

    async fn batch_raft(
        &self,
        request: Request<Streaming<RaftMessageBatch>>,
    ) -> Result<Response<Done>, Status> {
        let timer = RequestTimer::start("batch_raft");
        let result =
            crate::transport::receive::handle_batch_raft(self.store.clone(), request.into_inner())
                .await;
        timer.finish(result.as_ref().err().map(|_| "stream"));
        result.map(Response::new)
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Done>, Status> {
        let timer = RequestTimer::start("snapshot");
        let result = crate::transport::receive::handle_snapshot(
            self.store.clone(),
            self.snap_dir.clone(),
            request.into_inner(),
        )
        .await;
        timer.finish(result.as_ref().err().map(|_| "stream"));
        result.map(Response::new)
    }
}
