//! The admin dashboard's calls, under `/api/admin/`, behind the API's
//! access check like every other call:
//!
//! | call | answer |
//! | --- | --- |
//! | `GET /api/admin/stats?since=` | `{node, interval_ms, samples}`: this node's history, oldest first |
//! | `GET /api/admin/rooms?limit=` | `{rooms}`: the busiest rooms, with members and rates |
//! | `GET /api/admin/nodes` | `{nodes}`: the cluster's nodes and their health |

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::{ApiError, Authorized, number};
use crate::dashboard::NodeSummary;
use crate::state::AppState;
use chat_core::stats::Sample;

/// Rooms listed by default, and at most.
const ROOMS_DEFAULT: usize = 200;
const ROOMS_MAX: usize = 1000;
/// Member names listed per room.
const NAMES_PER_ROOM: usize = 5;

#[derive(Deserialize)]
pub(super) struct StatsQuery {
    since: Option<String>,
}

#[derive(Serialize)]
pub(super) struct StatsAnswer {
    node: String,
    interval_ms: u64,
    samples: Vec<Sample>,
}

/// `GET /api/admin/stats`: this node's samples, those after `since` (a
/// sample's `ts`) when given, for polling.
pub(super) async fn stats(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<StatsAnswer>, ApiError> {
    let Query(query) = query?;
    let since = number("since", query.since)?.map(|ts| i64::try_from(ts).unwrap_or(i64::MAX));
    let dashboard = &app.dashboard;
    Ok(Json(StatsAnswer {
        node: dashboard.node.clone(),
        interval_ms: u64::try_from(dashboard.history.interval().as_millis()).unwrap_or(u64::MAX),
        samples: dashboard.history.samples_since(since),
    }))
}

#[derive(Deserialize)]
pub(super) struct RoomsQuery {
    limit: Option<String>,
}

/// A room as the dashboard lists it.
#[derive(Debug, Serialize)]
pub(super) struct RoomActivity {
    room: String,
    /// Users in the room now (cluster-wide when the broker knows them).
    members: usize,
    /// The first few of their names.
    names: Vec<String>,
    /// Messages this node stored per second over the last minute.
    messages_per_sec: f64,
    /// The room's latest `seq`.
    seq: u64,
}

#[derive(Serialize)]
pub(super) struct RoomsAnswer {
    rooms: Vec<RoomActivity>,
}

/// `GET /api/admin/rooms`: the busiest rooms first (messages per second,
/// then members, then latest `seq`), at most `limit` (200; up to 1000).
pub(super) async fn rooms(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    query: Result<Query<RoomsQuery>, QueryRejection>,
) -> Result<Json<RoomsAnswer>, ApiError> {
    let Query(query) = query?;
    let limit = match number("limit", query.limit)? {
        None => ROOMS_DEFAULT,
        Some(0) => return Err(ApiError::bad_request("`limit` must be at least 1")),
        Some(n) => usize::try_from(n).unwrap_or(ROOMS_MAX).min(ROOMS_MAX),
    };
    let summaries = app
        .hub
        .room_summaries()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let rates = app.dashboard.history.room_rates();
    let mut rooms: Vec<RoomActivity> = summaries
        .into_iter()
        .map(|summary| {
            let members = app.hub.members(&summary.room);
            RoomActivity {
                messages_per_sec: rates.get(summary.room.as_str()).copied().unwrap_or(0.0),
                members: members.len(),
                names: members
                    .into_iter()
                    .take(NAMES_PER_ROOM)
                    .map(|user| user.name)
                    .collect(),
                seq: summary.seq,
                room: summary.room,
            }
        })
        .collect();
    rooms.sort_by(|a, b| {
        b.messages_per_sec
            .total_cmp(&a.messages_per_sec)
            .then(b.members.cmp(&a.members))
            .then(b.seq.cmp(&a.seq))
            .then(a.room.cmp(&b.room))
    });
    rooms.truncate(limit);
    Ok(Json(RoomsAnswer { rooms }))
}

#[derive(Serialize)]
pub(super) struct NodesAnswer {
    nodes: Vec<NodeSummary>,
}

/// `GET /api/admin/nodes`: the cluster's nodes (this one alone without a
/// cluster), by id; 503 when Redis does not answer.
pub(super) async fn nodes(
    _: Authorized,
    State(app): State<Arc<AppState>>,
) -> Result<Json<NodesAnswer>, ApiError> {
    let nodes = app.dashboard.nodes(&app.hub).await.map_err(|error| {
        tracing::warn!(%error, "API: cannot list the cluster's nodes");
        ApiError::unavailable(error.to_string())
    })?;
    Ok(Json(NodesAnswer { nodes }))
}
