//! The HTTP JSON API for backends and operators, under `/api/`:
//!
//! | call | answer |
//! | --- | --- |
//! | `POST /api/rooms/{room}/messages` `{text, id?, from?}` | 201 `{room, seq, id, ts}` |
//! | `GET /api/rooms/{room}/messages?before=&after=&limit=` | `{messages, more}` |
//! | `GET /api/rooms` | `[{room, members, seq}]` |
//! | `GET /api/rooms/{room}/members` | `[{id, name}]` |
//! | `PATCH /api/rooms/{room}/messages/{seq}` `{text, id?, from?}` | the ack; members get `edited` |
//! | `DELETE /api/rooms/{room}/messages/{seq}?id=` | the ack; members get `deleted` |
//! | `GET /api/rooms/{room}/messages/{seq}/versions` | `[{seq, from, text, ts, deleted}]` |
//! | `POST /api/rooms/{room}/messages/{seq}/reactions` `{emoji, remove?, id?, from?}` | the ack; members get `reaction` |
//! | `GET /api/rooms/{room}/pins` | the pinned messages |
//! | `PUT`/`DELETE /api/rooms/{room}/pins/{seq}?id=` | the ack; members get `pinned` |
//! | `GET /api/search?q=&room=&cursor=&limit=` | `{results, next?}`: messages holding every word |
//! | `POST /api/users/{id}/disconnect` | `{user, connections}`; each closes (1008) |
//! | `GET /api/users/{id}/rooms` | the user's rooms with unread counts, as `rooms` |
//! | `PUT /api/users/{id}/dms/{peer}` | `{room, with}`: their direct-message room, opened |
//! | `GET /api/directory` | public rooms, as `directory` |
//! | `POST /api/admin/drain` | 202 `{draining, connections}`; the node drains and exits, as on `SIGTERM` |
//! | `GET /api/admin/stats`, `/rooms`, `/nodes` | the dashboard's data ([`admin`]) |
//! | `PUT`/`DELETE /api/rooms/{room}/bans/{user}` | the ban; 204 lifted (`api/bans.rs`) |
//! | `PUT`/`DELETE /api/bans/{user}` | a server-wide ban; 204 lifted |
//! | `GET /api/bans?room=&user=` | `{bans}`, newest first |
//!
//! A posted message or change goes through the core like one sent on a
//! socket ([`Hub::post`](chat_core::Hub::post)): the same validation, the
//! same committer (so `seq` order, idempotency by `id`, and an answer only
//! after the commit is durable), the same permissions, the same broadcast.
//! The API acts as a moderator ([`Role::Moderator`]): it is the operator's.
//!
//! **Access.** With `--api-key`, every call needs `Authorization: Bearer
//! <key>`, compared in constant time so response timing tells nothing about
//! the key. Without a key, the API exists only for loopback peers (an
//! operator on the machine itself); anyone else gets 404, as if there were
//! no API. The peer is the TCP connection's, so behind a reverse proxy on
//! the same machine every caller is loopback: configure a key there.
//! Without a key the request must also name a loopback host (`localhost`,
//! `127.0.0.1`, `[::1]`): a page whose name was rebound to 127.0.0.1 is
//! loopback to us but still sends its own name. The dashboard's page
//! (`/admin`) follows the same rule ([`page_access`]): without a key only
//! such callers see it; with one it is served to anyone and asks for the key.
//!
//! **Cross-site requests.** A page on any site can make its visitor's
//! browser post an HTML form here without a CORS preflight, and the
//! keyless API would take it from a loopback browser. So every `POST` must
//! say `Content-Type: application/json` (which a form cannot, and which
//! costs a cross-site `fetch` a preflight we never answer): 415 otherwise.
//! The edge's guard ([`crate::edge::guard`]) also refuses a request from a
//! page whose `Origin` is not allowed, whatever its method.
//!
//! **Errors** are `{"code", "message"}` with the contract's codes and a
//! fitting status: 400 bad input, 401 bad or missing key, 404 no such
//! thing, 429 too busy, 503 storage unavailable. `unauthorized` is an
//! HTTP-only code (no frame carries it).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::Extensions;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use chat_protocol::validate::{self, Invalid};
use chat_protocol::{Change, ErrorCode, Message, User};
use serde::{Deserialize, Serialize};

use crate::edge::hosts::names_loopback;
use crate::state::AppState;
use chat_core::store::{Action, Draft, StoreError};
use chat_core::{HISTORY_DEFAULT, HISTORY_MAX, Role};

mod admin;
mod bans;
mod changes;
mod people;

/// Longest user id the API accepts in `from` or a path.
const MAX_USER_ID_CHARS: usize = 256;

/// Who a message posted without `from` is from.
const DEFAULT_SENDER: &str = "api";

/// The `/api/` routes; bodies are bounded by the frame limit, like frames.
pub fn router(app: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/rooms", get(list_rooms))
        .route(
            "/api/rooms/{room}/messages",
            post(post_message).get(read_messages),
        )
        .route(
            "/api/rooms/{room}/messages/{seq}",
            delete(changes::delete_message).patch(changes::edit_message),
        )
        .route(
            "/api/rooms/{room}/messages/{seq}/versions",
            get(changes::versions),
        )
        .route(
            "/api/rooms/{room}/messages/{seq}/reactions",
            post(changes::react),
        )
        .route("/api/rooms/{room}/pins", get(changes::list_pins))
        .route(
            "/api/rooms/{room}/pins/{seq}",
            put(changes::pin).delete(changes::unpin),
        )
        .route("/api/rooms/{room}/members", get(list_members))
        .route("/api/search", get(changes::search))
        .route("/api/users/{id}/disconnect", post(disconnect_user))
        .route("/api/users/{id}/rooms", get(people::user_rooms))
        .route("/api/users/{id}/dms/{peer}", put(people::open_dm))
        .route("/api/directory", get(people::directory))
        .route("/api/admin/drain", post(drain))
        .route("/api/admin/stats", get(admin::stats))
        .route("/api/admin/rooms", get(admin::rooms))
        .route("/api/admin/nodes", get(admin::nodes))
        .route(
            "/api/rooms/{room}/bans/{user}",
            put(bans::ban_from_room).delete(bans::unban_from_room),
        )
        .route(
            "/api/bans/{user}",
            put(bans::ban_from_server).delete(bans::unban_from_server),
        )
        .route("/api/bans", get(bans::list))
        .route("/api", axum::routing::any(no_such_call))
        .route("/api/{*rest}", axum::routing::any(no_such_call))
        .layer(DefaultBodyLimit::max(app.max_frame_bytes))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// An API error: a status and the JSON body `{code, message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", message)
    }

    pub(crate) fn storage(error: &StoreError) -> ApiError {
        tracing::warn!(%error, "API: storage unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            format!("storage unavailable ({error}); retry later"),
        )
    }
}

impl From<Invalid> for ApiError {
    /// The core's refusals, with the status each deserves.
    fn from(invalid: Invalid) -> ApiError {
        let status = match invalid.code {
            ErrorCode::RateLimited | ErrorCode::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            code: invalid.code.as_str(),
            message: invalid.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

macro_rules! rejection {
    ($($kind:ty),+) => {$(
        impl From<$kind> for ApiError {
            fn from(rejection: $kind) -> ApiError {
                // One status for bad input (axum says 422 for JSON of the
                // wrong shape), except a body over the size limit.
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_long", rejection.body_text())
                } else {
                    ApiError::bad_request(rejection.body_text())
                }
            }
        }
    )+};
}
rejection!(JsonRejection, PathRejection, QueryRejection);

/// Proof that a request may use the API: the right key, or, without a
/// configured key, a loopback peer naming a loopback host; and, for a
/// `POST`, that it is JSON (415 otherwise, checked after access so that a
/// hidden API stays hidden). Only `POST` needs it: it is the one method
/// besides `GET` an HTML form can send across sites, while a cross-site
/// `PUT`, `PATCH` or `DELETE` needs a CORS preflight we never answer.
pub struct Authorized;

impl FromRequestParts<Arc<AppState>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        may_use_api(parts, app)?;
        if parts.method == Method::POST && !is_json(&parts.headers) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "send `Content-Type: application/json` (with a JSON body, or none)",
            ));
        }
        Ok(Authorized)
    }
}

/// A loopback peer that names a loopback host: who may use the API, and
/// see the dashboard's page, without a key.
fn is_loopback_caller(extensions: &Extensions, headers: &HeaderMap) -> bool {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    peer.is_some_and(|ip| ip.is_loopback()) && names_loopback(headers.get(header::HOST))
}

/// The access check: the key, or without one a loopback caller.
fn may_use_api(parts: &Parts, app: &AppState) -> Result<(), ApiError> {
    let Some(key) = &app.api_key else {
        return if is_loopback_caller(&parts.extensions, &parts.headers) {
            Ok(())
        } else {
            // No key: to anyone else there is no API.
            Err(ApiError::not_found("no such resource"))
        };
    };
    match crate::auth::bearer_token(&parts.headers) {
        Some(offered) if key.matches(offered.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API key does not match",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the API key as `Authorization: Bearer <key>`",
        )),
    }
}

/// Access to the dashboard's page and its files: without an API key, the
/// API's rule (a loopback caller naming a loopback host; a plain 404 to
/// anyone else, as for a route that does not exist). With a key the page
/// is served to anyone: it holds no data, and asks for the key that every
/// call it makes needs.
pub async fn page_access(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if app.api_key.is_none() && !is_loopback_caller(request.extensions(), request.headers()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
}

fn checked_room(app: &AppState, room: String) -> Result<String, ApiError> {
    validate::room(&room, app.hub.limits().max_room_chars)?;
    Ok(room)
}

fn checked_user_id(id: &str) -> Result<(), ApiError> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_USER_ID_CHARS || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "user id must be 1 to {MAX_USER_ID_CHARS} characters, no control characters"
        )));
    }
    Ok(())
}

/// `from` of a posted message or change: a display name, or a user
/// object.
#[derive(Deserialize)]
#[serde(untagged)]
enum Sender {
    Name(String),
    User { id: Option<String>, name: String },
}

/// The user a `from` names (the API's own when absent), checked.
fn sender(from: Option<Sender>) -> Result<User, ApiError> {
    let from = match from {
        None => User {
            id: DEFAULT_SENDER.into(),
            name: DEFAULT_SENDER.into(),
        },
        Some(Sender::Name(name)) => User {
            id: DEFAULT_SENDER.into(),
            name,
        },
        Some(Sender::User { id, name }) => User {
            id: id.unwrap_or_else(|| DEFAULT_SENDER.into()),
            name,
        },
    };
    validate::display_name(&from.name).map_err(|e| ApiError::bad_request(e.message))?;
    checked_user_id(&from.id)?;
    Ok(from)
}

#[derive(Deserialize)]
struct PostBody {
    text: String,
    id: Option<String>,
    from: Option<Sender>,
    reply_to: Option<u64>,
}

/// The answer to a stored message or change: its ack's fields.
#[derive(Serialize)]
struct PostAnswer {
    room: String,
    seq: u64,
    id: String,
    ts: i64,
    /// As on `/ws`: the `id` was already stored; these are its fields.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// Stores `action` in `room` from `from` (as a moderator) under `id` (made
/// when absent), and answers with its ack's fields once it is durable.
async fn store(
    app: &AppState,
    room: String,
    id: Option<String>,
    from: User,
    action: Action,
) -> Result<PostAnswer, ApiError> {
    if let Some(id) = &id {
        validate::client_id(id)?;
    }
    let posted = app
        .hub
        .post(Draft {
            room,
            id: id.unwrap_or_else(|| format!("m_{}", ulid::Ulid::new())),
            from,
            role: Role::Moderator,
            action,
        })
        .await?;
    Ok(PostAnswer {
        room: posted.room,
        seq: posted.seq,
        id: posted.id,
        ts: posted.ts,
        duplicate: posted.duplicate,
    })
}

/// `POST /api/rooms/{room}/messages`: stores and broadcasts a message;
/// 201 once it is durable. A retry with the same `id` answers the
/// original (`duplicate: true`) and stores nothing.
async fn post_message(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    room: Result<Path<String>, PathRejection>,
    body: Result<Json<PostBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let room = checked_room(&app, room?.0)?;
    let Json(body) = body?;
    validate::text(&body.text, app.hub.limits().max_text_chars)?;
    let from = sender(body.from)?;
    let action = Action::Send {
        text: body.text,
        reply_to: body.reply_to,
    };
    let answer = store(&app, room, body.id, from, action).await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Serialize)]
struct Draining {
    draining: bool,
    /// WebSocket and Socket.IO connections open when the drain was asked.
    connections: usize,
}

/// `POST /api/admin/drain`: starts the shutdown `SIGTERM` starts (see
/// [`Server::serve`](crate::server::Server::serve)) and answers at once;
/// the process exits once it is done. Asking again changes nothing.
async fn drain(_: Authorized, State(app): State<Arc<AppState>>) -> Response {
    if !app.is_draining() {
        tracing::info!("drain asked through the API");
    }
    app.draining.cancel();
    let answer = Draining {
        draining: true,
        connections: app.connections.len(),
    };
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

/// Query bounds are read as text so a bad one gets our JSON 400.
#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

pub(crate) fn number(name: &str, value: Option<String>) -> Result<Option<u64>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
            })
        })
        .transpose()
}

#[derive(Serialize)]
struct HistoryAnswer {
    messages: Vec<Message>,
    /// With `after`: the changes in the page, as in `history` frames.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events: Vec<Change>,
    more: bool,
}

/// `GET /api/rooms/{room}/messages`: a page of history, as the `history`
/// frame gives it (`before`, or `after` as our extension; `limit` 1–200).
async fn read_messages(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    room: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let room = checked_room(&app, room?.0)?;
    let Query(query) = query?;
    let before = number("before", query.before)?;
    let after = number("after", query.after)?;
    if before.is_some() && after.is_some() {
        return Err(ApiError::bad_request("give `before` or `after`, not both"));
    }
    let limit = match number("limit", query.limit)? {
        None => HISTORY_DEFAULT,
        Some(0) => return Err(ApiError::bad_request("`limit` must be at least 1")),
        Some(n) => usize::try_from(n).unwrap_or(HISTORY_MAX).min(HISTORY_MAX),
    };
    let page = app
        .hub
        .history(&room, before, after, limit)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(HistoryAnswer {
        messages: page.messages,
        events: page.changes,
        more: page.more,
    }))
}

/// `GET /api/rooms`: every room with history or members.
async fn list_rooms(_: Authorized, State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let rooms = app
        .hub
        .room_summaries()
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(Json(rooms).into_response())
}

/// `GET /api/rooms/{room}/members`: who is in the room now.
async fn list_members(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    room: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<User>>, ApiError> {
    let room = checked_room(&app, room?.0)?;
    Ok(Json(app.hub.members(&room)))
}

#[derive(Serialize)]
struct Disconnected {
    user: String,
    /// Connections closed on this node.
    connections: usize,
}

/// `POST /api/users/{id}/disconnect`: closes every connection of the user
/// on this node (1008 on `/ws`; the transport on Socket.IO). The user may
/// reconnect: pair it with revoking their token to keep them out.
async fn disconnect_user(
    _: Authorized,
    State(app): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Disconnected>, ApiError> {
    let id = id?.0;
    checked_user_id(&id)?;
    let connections = app.hub.disconnect_user(&id);
    Ok(Json(Disconnected {
        user: id,
        connections,
    }))
}

/// Anything else under `/api/`: 404 (after the access check, so a hidden
/// API stays hidden).
async fn no_such_call(_: Authorized) -> ApiError {
    ApiError::not_found("no such API call; see docs/protocol.md §11")
}
