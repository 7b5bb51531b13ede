//! Operators' bans on SQLite (schema 5: the `bans` table). A server-wide
//! ban is stored with the room `''`, which no room can be named, so the
//! pair `(user_id, room)` stays a primary key without NULLs.

use rusqlite::{Connection, params};

use chat_core::bans::Ban;

/// The `room` column of a ban.
fn room_key(room: Option<&str>) -> &str {
    room.unwrap_or("")
}

/// Stores `ban`, or gives the existing one its reason; returns it as stored.
pub(super) fn put(conn: &mut Connection, ban: &Ban) -> rusqlite::Result<Ban> {
    let ts: i64 = conn
        .prepare_cached(
            "INSERT INTO bans (user_id, room, reason, ts) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, room) DO UPDATE SET reason = excluded.reason
             RETURNING ts",
        )?
        .query_row(
            params![ban.user, room_key(ban.room.as_deref()), ban.reason, ban.ts],
            |row| row.get(0),
        )?;
    Ok(Ban { ts, ..ban.clone() })
}

/// Deletes a ban; whether there was one.
pub(super) fn delete(
    conn: &mut Connection,
    user: &str,
    room: Option<&str>,
) -> rusqlite::Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM bans WHERE user_id = ?1 AND room = ?2")?
        .execute(params![user, room_key(room)])?;
    Ok(deleted > 0)
}

/// Every ban, newest first.
pub(super) fn list(conn: &mut Connection) -> rusqlite::Result<Vec<Ban>> {
    let mut statement = conn.prepare_cached(
        "SELECT user_id, room, reason, ts FROM bans ORDER BY ts DESC, user_id, room",
    )?;
    let rows = statement.query_map([], |row| {
        let room: String = row.get(1)?;
        Ok(Ban {
            user: row.get(0)?,
            room: (!room.is_empty()).then_some(room),
            reason: row.get(2)?,
            ts: row.get(3)?,
        })
    })?;
    rows.collect()
}
