//! The API's calls about people: a user's rooms with their unread counts,
//! the directory of public rooms, and opening a direct-message room
//! between two users (whom the operator can then post to with
//! `POST /api/rooms/{room}/messages`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use chat_core::people::Refused;
use chat_protocol::{DirectoryEntry, RoomSummary, User};
use serde::Serialize;

use super::{ApiError, Authorized, checked_user_id};
use crate::state::AppState;

/// `GET /api/users/{id}/rooms`: the rooms the user is a member of, with
/// unread and mention counts, the most recently active first.
pub async fn user_rooms(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<RoomSummary>>, ApiError> {
    let id = id?.0;
    checked_user_id(&id)?;
    let rooms = app.hub.user_rooms(&id).await;
    Ok(Json(rooms.map_err(|e| ApiError::storage(&e))?))
}

/// `GET /api/directory`: every room but direct messages, the most
/// recently active first.
pub async fn directory(
    _: Authorized,
    State(app): State<Arc<AppState>>,
) -> Result<Json<Vec<DirectoryEntry>>, ApiError> {
    let rooms = app.hub.directory().await;
    Ok(Json(rooms.map_err(|e| ApiError::storage(&e))?))
}

#[derive(Serialize)]
pub struct OpenedDm {
    room: String,
    with: User,
}

/// `PUT /api/users/{id}/dms/{peer}`: opens the direct-message room of the
/// two users (idempotent); both hear of it (`room_added`).
pub async fn open_dm(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<OpenedDm>, ApiError> {
    let Path((id, peer)) = path?;
    checked_user_id(&id)?;
    checked_user_id(&peer)?;
    match app.hub.open_dm(&id, &peer).await {
        Ok((room, with)) => Ok(Json(OpenedDm { room, with })),
        Err(Refused::Invalid(invalid)) => Err(invalid.into()),
        Err(Refused::Store(e)) => Err(ApiError::storage(&e)),
    }
}
