//! The API's calls that change messages (edit, delete, react, pin) and read
//! what changed (versions, pins, search). Each change is stored through
//! [`store`] as the API's moderator, like a request on a
//! socket.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use chat_core::store::{Action, Search, SearchScope, Version};
use chat_core::{RoomAccess, SEARCH_DEFAULT, SEARCH_MAX};
use chat_protocol::Message;
use chat_protocol::validate;
use serde::{Deserialize, Serialize};

use super::{ApiError, Authorized, PostAnswer, Sender, checked_room, number, sender, store};
use crate::state::AppState;

/// A room and a message `seq` from the path, checked.
fn target(
    app: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, u64), ApiError> {
    let Path((room, seq)) = path?;
    let room = checked_room(app, room)?;
    let seq = seq
        .parse()
        .ok()
        .filter(|&seq| seq > 0)
        .ok_or_else(|| ApiError::bad_request("`seq` must be a positive integer"))?;
    Ok((room, seq))
}

/// The optional idempotency `id` of a change without a body.
#[derive(Deserialize)]
pub struct IdQuery {
    id: Option<String>,
}

#[derive(Deserialize)]
pub struct EditBody {
    text: String,
    id: Option<String>,
    from: Option<Sender>,
}

/// `PATCH /api/rooms/{room}/messages/{seq}`: replaces the message's text;
/// members get `edited`.
pub async fn edit_message(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<EditBody>, JsonRejection>,
) -> Result<Json<PostAnswer>, ApiError> {
    let (room, target) = target(&app, path)?;
    let Json(body) = body?;
    validate::text(&body.text, app.hub.limits().max_text_chars)?;
    let action = Action::Edit {
        target,
        text: body.text,
    };
    let from = sender(body.from)?;
    Ok(Json(store(&app, room, body.id, from, action).await?))
}

/// `DELETE /api/rooms/{room}/messages/{seq}`: replaces the message with a
/// tombstone (same `seq`, empty text, `deleted: true`); members get
/// `deleted`. Deleting it again is `not_found`, unless it is a retry with
/// the same `id`.
pub async fn delete_message(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<PostAnswer>, ApiError> {
    let (room, target) = target(&app, path)?;
    let Query(IdQuery { id }) = query?;
    let action = Action::Delete { target };
    Ok(Json(store(&app, room, id, sender(None)?, action).await?))
}

#[derive(Deserialize)]
pub struct ReactBody {
    emoji: String,
    #[serde(default)]
    remove: bool,
    id: Option<String>,
    from: Option<Sender>,
}

/// `POST /api/rooms/{room}/messages/{seq}/reactions`: adds `from`'s
/// reaction (or takes it back); members get `reaction`.
pub async fn react(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<ReactBody>, JsonRejection>,
) -> Result<Json<PostAnswer>, ApiError> {
    let (room, target) = target(&app, path)?;
    let Json(body) = body?;
    validate::emoji(&body.emoji)?;
    let action = Action::React {
        target,
        emoji: body.emoji,
        remove: body.remove,
    };
    let from = sender(body.from)?;
    Ok(Json(store(&app, room, body.id, from, action).await?))
}

/// `PUT /api/rooms/{room}/pins/{seq}`: pins the message; members get
/// `pinned`.
pub async fn pin(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<PostAnswer>, ApiError> {
    set_pin(&app, path, query, false).await
}

/// `DELETE /api/rooms/{room}/pins/{seq}`: unpins the message.
pub async fn unpin(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<PostAnswer>, ApiError> {
    set_pin(&app, path, query, true).await
}

async fn set_pin(
    app: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<IdQuery>, QueryRejection>,
    remove: bool,
) -> Result<Json<PostAnswer>, ApiError> {
    let (room, target) = target(app, path)?;
    let Query(IdQuery { id }) = query?;
    let action = Action::Pin { target, remove };
    Ok(Json(store(app, room, id, sender(None)?, action).await?))
}

/// `GET /api/rooms/{room}/pins`: the pinned messages, earliest pin first.
pub async fn list_pins(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    room: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let room = checked_room(&app, room?.0)?;
    let pins = app
        .hub
        .pins(&room)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(pins))
}

/// `GET /api/rooms/{room}/messages/{seq}/versions`: every text the message
/// had, for moderators: the original, each edit, the deletion.
pub async fn versions(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Vec<Version>>, ApiError> {
    let (room, seq) = target(&app, path)?;
    let versions = app
        .hub
        .versions(&room, seq)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "room `{room}` has no message {seq} (never stored, or purged)"
        )));
    }
    Ok(Json(versions))
}

/// Search parameters, read as text so a bad one gets our JSON 400.
#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    room: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
pub struct SearchAnswer {
    results: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<u64>,
}

/// `GET /api/search?q=&room=&cursor=&limit=`: messages holding every word
/// of `q`, newest first, in `room` or in every room (the operator reads
/// them all); `next` is the `cursor` of the following page.
pub async fn search(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchAnswer>, ApiError> {
    let Query(query) = query?;
    let words = validate::search_words(query.q.as_deref().unwrap_or(""))?;
    let rooms = match query.room.filter(|r| !r.is_empty()) {
        Some(room) => SearchScope::Room(checked_room(&app, room)?),
        None => SearchScope::Readable(RoomAccess::Any),
    };
    let limit = match number("limit", query.limit)? {
        None => SEARCH_DEFAULT,
        Some(0) => return Err(ApiError::bad_request("`limit` must be at least 1")),
        Some(n) => usize::try_from(n).unwrap_or(SEARCH_MAX).min(SEARCH_MAX),
    };
    let search = Search {
        words,
        rooms,
        cursor: number("cursor", query.cursor)?,
        limit,
    };
    let found = app
        .hub
        .search(&search)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(SearchAnswer {
        results: found.messages,
        next: found.next,
    }))
}
