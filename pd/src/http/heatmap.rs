//! `GET /pd/api/v1/heatmap`: the key-space heatmap's window as a matrix.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde_json::json;

use super::{bad_request, ApiResult, Shared};
use crate::heatmap::{FlowKind, DEFAULT_MAX_ROWS};
use crate::hex;
use crate::tso::unix_millis;

/// Most rows a caller may ask for.
const ROWS_LIMIT: usize = 2048;

/// Query of `/heatmap`; every field optional.
#[derive(serde::Deserialize)]
pub(super) struct HeatmapQuery {
    /// `write` (the default) or `read`.
    kind: Option<String>,
    /// The newest this many buckets (1 up to the window); absent: the whole window.
    buckets: Option<String>,
    /// At most this many key ranges (rows), 1 to `ROWS_LIMIT`; absent: `DEFAULT_MAX_ROWS`.
    rows: Option<String>,
}

fn number_param(
    name: &str,
    value: Option<&String>,
    max: usize,
) -> Result<Option<usize>, super::ApiError> {
    let Some(text) = value else {
        return Ok(None);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(bad_request(format!(
            "{name} must be a whole number from 1 to {max}, got {text:?}"
        ))),
    }
}

/// `{kind, bucket_seconds, times, keys, values, unplaced, max, cells}`: `times` are the unix
/// seconds each column starts, `keys` the hex start key of each row (the last row runs to the
/// end of the key space), `values[column][row]` bytes, `unplaced[column]` bytes of regions
/// beyond a bucket's range limit, `max` the largest value and `cells` how many are non-zero.
pub(super) async fn heatmap(
    State(s): Shared,
    query: Result<Query<HeatmapQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
    let kind = match q.kind.as_deref() {
        None => FlowKind::Write,
        Some(text) => FlowKind::parse(text).ok_or_else(|| {
            bad_request(format!("kind must be \"write\" or \"read\", got {text:?}"))
        })?,
    };
    let map = {
        let history = s.flow_history.lock();
        let buckets = number_param("buckets", q.buckets.as_ref(), history.capacity())?
            .unwrap_or(history.capacity());
        let rows = number_param("rows", q.rows.as_ref(), ROWS_LIMIT)?.unwrap_or(DEFAULT_MAX_ROWS);
        history.matrix(unix_millis(), kind, buckets, rows)
    };
    Ok(Json(json!({
        "kind": kind.name(),
        "bucket_seconds": map.bucket_ms / 1000,
        "times": map.times_ms.iter().map(|t| t / 1000).collect::<Vec<_>>(),
        "keys": map.keys.iter().map(|k| hex::encode(k)).collect::<Vec<_>>(),
        "values": map.values,
        "unplaced": map.unplaced,
        "max": map.max(),
        "cells": map.nonzero_cells(),
    })))
}
