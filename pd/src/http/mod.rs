//! PD's JSON HTTP API under `/pd/api/v1`: stores (and decommissioning), regions, operators,
//! the schedule config, the key-space heatmap, health and metrics, and the web page at
//! `/dashboard` that shows them. Served on its own address and on the gRPC client
//! address (see `grpc`).

mod dashboard;
mod heatmap;
mod region_search;
mod views;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::cluster::RegionInfo;
use crate::error::Error;
use crate::schedule::admin::AdminRequest;
use crate::state::PdState;
use crate::tso::unix_millis;
use crate::ShutdownSignal;

/// An HTTP error answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::StoreNotFound(_) | Error::RegionNotFound(_) | Error::EntryNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Error::InvalidArgument(_) | Error::Config(_) | Error::StaleRegion(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::NotBootstrapped | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::StoresNotEnough { .. } | Error::StoreTombstone(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

type ApiResult = Result<Json<Value>, ApiError>;
type Shared = State<Arc<PdState>>;

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| bad_request(format!("{text:?} is not a valid id")))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

pub fn router(state: Arc<PdState>) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/cluster", get(cluster))
        .route("/members", get(members))
        .route("/stores", get(stores))
        .route("/store/:id", get(store).delete(delete_store))
        .route("/store/:id/state", axum::routing::post(set_store_state))
        .route("/regions", get(regions))
        .route("/regions/key", get(regions_from_key))
        .route("/regions/summary", get(regions_summary))
        .route("/regions/search", get(regions_search))
        .route("/config", get(config))
        .route("/schedulers", get(schedulers))
        .route("/hotspot/regions/write", get(hot_write_regions))
        .route("/hotspot/regions/read", get(hot_read_regions))
        .route("/heatmap", get(heatmap::heatmap))
        .route("/region/id/:id", get(region_by_id))
        .route("/region/key/:key", get(region_by_key))
        .route("/operators", get(operators).post(create_operator))
        .route("/operators/:region_id", delete(delete_operator))
        .route(
            "/config/schedule",
            get(schedule_config).post(set_schedule_config),
        )
        .route("/metrics", get(metrics));
    Router::new()
        .nest("/pd/api/v1", api)
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .merge(dashboard::routes())
        .layer(axum::middleware::map_response(json_client_errors))
        .with_state(state)
}

/// Largest plain-text error body turned into a JSON error message, in bytes.
const MAX_ERROR_TEXT: usize = 64 * 1024;

/// Client errors that axum answers by itself (405 for a method a path does not take, 413 for
/// a body over the limit, 400 for a path parameter that is not UTF-8) carry plain text or
/// nothing; every error of this API is `{"error": "..."}`, so those are rewritten, keeping
/// their status and headers such as `Allow`.
async fn json_client_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_string()
    } else {
        text
    };
    let mut answer = ApiError(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The answer to a path no route serves: a gRPC call (content type `application/grpc...`)
/// gets the gRPC status Unimplemented, anything else 404 with a JSON error. Used where the
/// API shares its address with gRPC, and on its own port.
pub async fn unknown_path(request: axum::extract::Request) -> Response {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if is_grpc {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE.as_str(), "application/grpc"),
                ("grpc-status", "12"),
            ],
        )
            .into_response();
    }
    not_found(format!("no such endpoint: {}", request.uri().path())).into_response()
}

/// Serves the API on `listener` until `shutdown` fires.
pub fn serve(
    state: Arc<PdState>,
    listener: TcpListener,
    shutdown: ShutdownSignal,
) -> JoinHandle<()> {
    let app = router(state).fallback(unknown_path);
    tokio::spawn(async move {
        match axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await
        {
            Ok(()) => info!("HTTP server stopped"),
            Err(e) => error!(%e, "HTTP server failed"),
        }
    })
}

async fn health() -> Json<Value> {
    Json(json!({ "health": true }))
}

async fn cluster(State(s): Shared) -> Json<Value> {
    let cfg = s.schedule_config();
    Json(json!({
        "id": s.cluster_id,
        "bootstrapped": s.cluster.is_bootstrapped(),
        "max_replicas": cfg.max_replicas,
        "gc_safe_point": s.gc_safe_point(),
    }))
}

async fn members(State(s): Shared) -> Json<Value> {
    let m = &s.member;
    let member = json!({
        "name": m.name,
        "member_id": m.member_id,
        "client_urls": m.client_urls,
        "peer_urls": m.peer_urls,
    });
    Json(json!({ "members": [member.clone()], "leader": member }))
}

fn store_view(s: &PdState, id: Option<u64>) -> Result<Vec<Value>, ApiError> {
    let cfg = s.schedule_config();
    let now = unix_millis();
    let state = s.cluster.read();
    let loads = state.store_loads();
    let view = |st: &crate::cluster::StoreInfo| {
        let load = loads.get(&st.id()).copied().unwrap_or_default();
        views::store(st, st.status(now, &cfg), load)
    };
    match id {
        Some(id) => {
            let st = state
                .store(id)
                .ok_or_else(|| not_found(format!("store {id} not found")))?;
            Ok(vec![view(st)])
        }
        None => Ok(state.stores.values().map(view).collect()),
    }
}

async fn stores(State(s): Shared) -> ApiResult {
    let list = store_view(&s, None)?;
    Ok(Json(json!({ "count": list.len(), "stores": list })))
}

async fn store(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let mut list = store_view(&s, Some(id))?;
    Ok(Json(list.pop().unwrap_or(Value::Null)))
}

/// Decommissions a store: PD moves its peers away, then marks it Tombstone.
async fn delete_store(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    s.set_store_offline(id)?;
    let mut list = store_view(&s, Some(id))?;
    Ok(Json(list.pop().unwrap_or(Value::Null)))
}

/// Query of `/store/{id}/state`.
#[derive(serde::Deserialize)]
struct StoreStateQuery {
    state: String,
}

/// Sets a store's state as PD's `POST /store/{id}/state?state=...` does: `Up` cancels a
/// decommission (`shoal-ctl store cancel-delete`), `Offline` starts one (as `DELETE
/// /store/{id}`). Tombstone is reached only by emptying an Offline store; 400 for any other
/// state, 409 when the store is Tombstone or too few Up stores would remain.
async fn set_store_state(
    State(s): Shared,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<StoreStateQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let axum::extract::Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    match q.state.as_str() {
        "Up" => s.set_store_up(id)?,
        "Offline" => s.set_store_offline(id)?,
        other => {
            return Err(bad_request(format!(
                "state {other:?} cannot be set: use Up (cancel a decommission) or Offline \
                 (start one)"
            )))
        }
    };
    let mut list = store_view(&s, Some(id))?;
    Ok(Json(list.pop().unwrap_or(Value::Null)))
}

/// Every region (`{"count", "regions"}`). The region map's lock is held only to copy it; the
/// JSON, seconds of work at 300,000 regions, is built on a blocking thread afterwards. Built
/// under the lock on the async runtime, it held up region heartbeats, which wait for that lock,
/// and with them the runtime's workers and PD's timestamp service.
async fn regions(State(s): Shared) -> ApiResult {
    let copied: Vec<RegionInfo> = s.cluster.read().regions.iter().cloned().collect();
    tokio::task::spawn_blocking(move || views::regions(copied.iter()))
        .await
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Totals over every region, without listing them: `{"count", "peers" (learners included),
/// "learners", "leaderless",
/// "approximate_size" (bytes), "approximate_keys"}`. One pass over PD's region map; a client
/// that pages through regions with `/regions/key` gets its totals here.
async fn regions_summary(State(s): Shared) -> Json<Value> {
    let state = s.cluster.read();
    Json(views::regions_summary(state.regions.iter()))
}

/// Query of `/regions/search`.
#[derive(serde::Deserialize)]
struct SearchQuery {
    /// The filter (see `region_search::RegionFilter`); absent or empty: every region.
    q: Option<String>,
    /// At most this many regions listed; 0 or absent: all (see [`limit_param`]).
    limit: Option<String>,
}

/// One page of the regions a filter matches, in key order, with how many match and how many
/// there are: `{"count", "matching", "total", "regions": [...]}` (regions as in `/regions`).
/// The pass over the region map runs on a blocking thread, so a search of a large map does
/// not hold an async worker; only the listed regions are turned into JSON.
async fn regions_search(
    State(s): Shared,
    query: Result<axum::extract::Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let axum::extract::Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    let filter = region_search::RegionFilter::new(q.q.as_deref().unwrap_or(""));
    let limit = limit_param(q.limit.as_ref())?;
    tokio::task::spawn_blocking(move || {
        region_search::search(s.cluster.read().regions.iter(), &filter, limit)
    })
    .await
    .map(Json)
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Query of `/regions/key`: hex keys of PD's (encoded) key space, as everywhere in this API.
#[derive(serde::Deserialize)]
struct KeyRange {
    key: Option<String>,
    end_key: Option<String>,
    /// At most this many regions; 0 or absent: all (see [`limit_param`]).
    limit: Option<String>,
}

/// The `limit` query parameter of the region listings: a number of regions, 0 or absent for
/// all. Parsed here rather than by the query extractor, whose error would not name it.
fn limit_param(value: Option<&String>) -> Result<usize, ApiError> {
    match value {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            bad_request(format!(
                "limit {text:?} is not a number of regions (0 or absent: all)"
            ))
        }),
    }
}

fn hex_param(name: &str, value: Option<&String>) -> Result<Vec<u8>, ApiError> {
    match value {
        None => Ok(Vec::new()),
        Some(text) => crate::hex::decode(text)
            .ok_or_else(|| bad_request(format!("{name} {text:?} is not hex"))),
    }
}

/// The regions overlapping `[key, end_key)` in key order (an empty `end_key`: to the end;
/// `end_key == key`: none; `end_key` before `key`: 400).
async fn regions_from_key(
    State(s): Shared,
    query: Result<axum::extract::Query<KeyRange>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let axum::extract::Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    let start = hex_param("key", q.key.as_ref())?;
    let end = hex_param("end_key", q.end_key.as_ref())?;
    if !end.is_empty() && end < start {
        return Err(bad_request("end_key is before key"));
    }
    let state = s.cluster.read();
    let found = state
        .regions
        .scan(&start, &end, limit_param(q.limit.as_ref())?);
    Ok(Json(views::regions(found.into_iter())))
}

/// The whole configuration a running PD acts on: the schedule section and the cluster's
/// storage API version (`{"storage": {"api-version": 1 | 2}}`, fixed at bootstrap).
async fn config(State(s): Shared) -> ApiResult {
    let schedule = serde_json::to_value(s.schedule_config())
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let api_version = s.cluster.api_version();
    Ok(Json(json!({
        "schedule": schedule,
        "storage": { "api-version": api_version },
    })))
}

/// The schedulers and checkers that run, by PD's names for them.
async fn schedulers(State(s): Shared) -> Json<Value> {
    let cfg = s.schedule_config();
    let names: Vec<&str> = [
        (cfg.enable_balance_leader, "balance-leader-scheduler"),
        (cfg.enable_balance_region, "balance-region-scheduler"),
        (
            cfg.enable_hot_region_scheduler,
            "balance-hot-region-scheduler",
        ),
        (cfg.enable_replica_checker, "replica-checker"),
        (cfg.enable_keyspace_split, "keyspace-split-checker"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    Json(json!(names))
}

async fn hot_write_regions(State(s): Shared) -> Json<Value> {
    let state = s.cluster.read();
    Json(views::hot_regions(state.regions.iter(), views::Flow::Write))
}

async fn hot_read_regions(State(s): Shared) -> Json<Value> {
    let state = s.cluster.read();
    Json(views::hot_regions(state.regions.iter(), views::Flow::Read))
}

async fn region_by_id(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let state = s.cluster.read();
    let region = state
        .regions
        .get(id)
        .ok_or_else(|| not_found(format!("region {id} not found")))?;
    Ok(Json(views::region(region)))
}

async fn region_by_key(State(s): Shared, Path(key): Path<String>) -> ApiResult {
    let raw = crate::hex::decode(&key).ok_or_else(|| bad_request(format!("{key:?} is not hex")))?;
    let state = s.cluster.read();
    let region = state
        .regions
        .find(&raw)
        .ok_or_else(|| not_found(format!("no region contains key {key}")))?;
    Ok(Json(views::region(region)))
}

async fn operators(State(s): Shared) -> Json<Value> {
    let ops = s.operators.lock();
    let list: Vec<Value> = ops
        .running()
        .chain(ops.history())
        .map(views::operator)
        .collect();
    Json(json!({ "count": list.len(), "operators": list }))
}

async fn create_operator(State(s): Shared, body: Bytes) -> ApiResult {
    let req: AdminRequest = parse_json(&body)?;
    // An unknown region or store is a fault of the request here, not a missing resource.
    let op = s.create_admin_operator(&req).map_err(|e| match e {
        Error::RegionNotFound(_) | Error::StoreNotFound(_) | Error::EntryNotFound(_) => {
            bad_request(e.to_string())
        }
        other => other.into(),
    })?;
    Ok(Json(views::operator(&op)))
}

async fn delete_operator(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let op = s.cancel_operator(id)?;
    Ok(Json(views::operator(&op)))
}

async fn schedule_config(State(s): Shared) -> ApiResult {
    let cfg = s.schedule_config();
    serde_json::to_value(cfg)
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn set_schedule_config(State(s): Shared, body: Bytes) -> ApiResult {
    let patch: Value = parse_json(&body)?;
    let cfg = s.update_schedule_config(&patch)?;
    serde_json::to_value(cfg)
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn metrics(State(s): Shared) -> impl IntoResponse {
    s.refresh_gauges();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
