//! The API's bans: a user kept out of a room, or off the server, on every
//! node, until lifted (`chat_core::bans`).
//!
//! | call | answer |
//! | --- | --- |
//! | `PUT /api/rooms/{room}/bans/{user}` `{reason?}` | 200 the ban |
//! | `DELETE /api/rooms/{room}/bans/{user}` | 204; 404 when there was none |
//! | `PUT /api/bans/{user}` `{reason?}` | 200 the ban, `room: null` |
//! | `DELETE /api/bans/{user}` | 204; 404 when there was none |
//! | `GET /api/bans?room=&user=` | 200 `{bans}`, newest first |
//!
//! A ban is `{user, room, reason, ts}`. The body of a `PUT` is optional;
//! no `Content-Type` is required of it (a cross-site `PUT` needs a CORS
//! preflight we never answer, see [`Authorized`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chat_core::bans::Ban;
use chat_core::committer::now_ms;
use chat_protocol::validate;
use serde::{Deserialize, Serialize};

use super::{ApiError, Authorized, checked_room, checked_user_id};
use crate::state::AppState;

/// Longest reason a ban may give.
const MAX_REASON_CHARS: usize = 500;

/// The optional body of a `PUT`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanBody {
    reason: Option<String>,
}

/// The reason a `PUT`'s body gives: none for an empty body, an empty
/// string or `null`.
fn reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let BanBody { reason } = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body must be {{\"reason\": \"…\"}}: {e}"))
    })?;
    let Some(reason) = reason.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    validate::text(&reason, MAX_REASON_CHARS)?;
    Ok(Some(reason))
}

/// Stores and carries out a ban; answers it as stored.
async fn ban(
    app: &AppState,
    user: String,
    room: Option<String>,
    body: &[u8],
) -> Result<Json<Ban>, ApiError> {
    checked_user_id(&user)?;
    let reason = reason(body)?;
    let ban = Ban {
        user,
        room,
        reason,
        ts: now_ms(),
    };
    let stored = app.hub.ban(ban).await.map_err(|e| ApiError::storage(&e))?;
    Ok(Json(stored))
}

/// Lifts a ban: 204, or 404 when there was none.
async fn unban(app: &AppState, user: String, room: Option<&str>) -> Result<Response, ApiError> {
    checked_user_id(&user)?;
    let removed = app
        .hub
        .unban(&user, room)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    if !removed {
        return Err(ApiError::not_found("no such ban"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /api/rooms/{room}/bans/{user}`: bans the user from the room.
pub async fn ban_from_room(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Json<Ban>, ApiError> {
    let Path((room, user)) = path?;
    let room = checked_room(&app, room)?;
    ban(&app, user, Some(room), &body).await
}

/// `DELETE /api/rooms/{room}/bans/{user}`: lifts the user's ban from the
/// room.
pub async fn unban_from_room(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((room, user)) = path?;
    let room = checked_room(&app, room)?;
    unban(&app, user, Some(&room)).await
}

/// `PUT /api/bans/{user}`: bans the user from the server.
pub async fn ban_from_server(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    user: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<Ban>, ApiError> {
    ban(&app, user?.0, None, &body).await
}

/// `DELETE /api/bans/{user}`: lifts the user's server ban.
pub async fn unban_from_server(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    user: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    unban(&app, user?.0, None).await
}

#[derive(Deserialize)]
pub struct BansQuery {
    room: Option<String>,
    user: Option<String>,
}

#[derive(Serialize)]
pub struct BanList {
    bans: Vec<Ban>,
}

/// `GET /api/bans?room=&user=`: the bans in effect, newest first; with
/// `room`, that room's only (server bans left out); with `user`, that
/// user's only.
pub async fn list(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    query: Result<Query<BansQuery>, QueryRejection>,
) -> Result<Json<BanList>, ApiError> {
    let Query(query) = query?;
    let room = query
        .room
        .map(|room| checked_room(&app, room))
        .transpose()?;
    if let Some(user) = &query.user {
        checked_user_id(user)?;
    }
    let bans = app
        .hub
        .bans(room.as_deref(), query.user.as_deref())
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(BanList { bans }))
}
