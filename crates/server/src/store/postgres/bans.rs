//! Operators' bans in the shared store (migration 6: the `bans` table),
//! as on SQLite: a server-wide ban is stored with the room `''`, which no
//! room can be named. Every node reads the whole list at start and every
//! `chat_core::bans::RELOAD_INTERVAL`; it is small (bans are made by hand).

use chat_core::bans::Ban;
use chat_core::store::StoreError;
use deadpool_postgres::Object;

use super::{Param, db_error, execute, query};

const PUT: &str = "
    INSERT INTO bans (user_id, room, reason, ts) VALUES ($1, $2, $3, $4)
    ON CONFLICT (user_id, room) DO UPDATE SET reason = excluded.reason
    RETURNING ts";

const DELETE: &str = "DELETE FROM bans WHERE user_id = $1 AND room = $2";

const LIST: &str = "
    SELECT user_id, room, reason, ts FROM bans
    ORDER BY ts DESC, user_id COLLATE \"C\", room COLLATE \"C\"";

/// The `room` column of a ban.
fn room_key(room: Option<&str>) -> &str {
    room.unwrap_or("")
}

/// Stores `ban`, or gives the existing one its reason; returns it as stored.
pub(super) async fn put(client: &Object, ban: &Ban) -> Result<Ban, StoreError> {
    let room = room_key(ban.room.as_deref());
    let params: [&Param<'_>; 4] = [&ban.user, &room, &ban.reason, &ban.ts];
    let rows = query(client, PUT, &params).await?;
    let ts = match rows.first() {
        Some(row) => row.try_get(0).map_err(db_error)?,
        None => ban.ts,
    };
    Ok(Ban { ts, ..ban.clone() })
}

/// Deletes a ban; whether there was one.
pub(super) async fn delete(
    client: &Object,
    user: &str,
    room: Option<&str>,
) -> Result<bool, StoreError> {
    let room = room_key(room);
    let params: [&Param<'_>; 2] = [&user, &room];
    Ok(execute(client, DELETE, &params).await? > 0)
}

/// Every ban, newest first.
pub(super) async fn list(client: &Object) -> Result<Vec<Ban>, StoreError> {
    query(client, LIST, &[])
        .await?
        .iter()
        .map(|row| {
            let room: String = row.try_get(1).map_err(db_error)?;
            Ok(Ban {
                user: row.try_get(0).map_err(db_error)?,
                room: (!room.is_empty()).then_some(room),
                reason: row.try_get(2).map_err(db_error)?,
                ts: row.try_get(3).map_err(db_error)?,
            })
        })
        .collect()
}
