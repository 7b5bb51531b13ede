//! People in the embedded store: memberships with read markers
//! (`members`), and who each message mentions (`mentions`, and the
//! message's `mentions` column for reading it back).
//!
//! Counts are read, not kept: unread is a range of the room's primary key
//! (`seq` after the marker), mentions a range of `mentions`' key, so they
//! stay exact whatever deletes, purges and concurrent senders do, and a
//! send writes nothing per member.

use chat_core::store::{PersonChange, ReadState};
use chat_protocol::people::{dm_peer, mention_words, mentioned, name_key};
use chat_protocol::{DirectoryEntry, Message, RoomSummary, User};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::read::current_message;
use super::{latest_seq, to_sql_seq};
use crate::store::entries::{mentions_column, sort_by_activity, upper_bound_of_prefix};
use chat_core::committer::now_ms;

/// `user`'s place in `room`, as the counts define it.
pub(super) fn read_state(conn: &Connection, room: &str, user: &str) -> rusqlite::Result<ReadState> {
    let member: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT last_read, user_name FROM members WHERE user_id = ?1 AND room = ?2",
        )?
        .query_row(params![user, room], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((last_read, name)) = member else {
        return Ok(ReadState {
            last_read: latest_seq(conn, room)?,
            ..ReadState::default()
        });
    };
    let (unread, unread_mentions) = counts_after(conn, room, user, last_read)?;
    Ok(ReadState {
        last_read: last_read as u64,
        unread,
        unread_mentions,
        member_name: Some(name),
    })
}

/// Messages of `room` after `seq` from others, not deleted; and those
/// that mention `user`.
fn counts_after(
    conn: &Connection,
    room: &str,
    user: &str,
    seq: i64,
) -> rusqlite::Result<(u64, u64)> {
    let unread: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages WHERE room = ?1 AND seq > ?2 AND kind = 0
             AND deleted = 0 AND user_id <> ?3",
        )?
        .query_row(params![room, seq, user], |row| row.get(0))?;
    let mentions: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM mentions t JOIN messages m ON m.room = t.room AND m.seq = t.seq
             WHERE t.user_id = ?1 AND t.room = ?2 AND t.seq > ?3 AND m.deleted = 0",
        )?
        .query_row(params![user, room, seq], |row| row.get(0))?;
    Ok((unread as u64, mentions as u64))
}

/// Stores `changes` in one transaction. Only writes: the counts of the
/// states each `read` is answered with are read afterwards on a reader
/// connection ([`read_states`]), so that a burst of reads holds the one
/// writer, which every message's commit waits for, as briefly as can be.
pub(super) fn record(conn: &mut Connection, changes: &[PersonChange]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for change in changes {
        match change {
            PersonChange::Joined {
                user,
                room,
                read_to,
            } => joined(&tx, user, room, *read_to)?,
            PersonChange::Left { user, room } => {
                tx.prepare_cached("DELETE FROM members WHERE user_id = ?1 AND room = ?2")?
                    .execute(params![user, room])?;
            }
            PersonChange::Read { user, room, seq } => {
                let latest = to_sql_seq(latest_seq(&tx, room)?);
                tx.prepare_cached(
                    "UPDATE members SET last_read = max(last_read, min(?3, ?4))
                     WHERE user_id = ?1 AND room = ?2",
                )?
                .execute(params![user, room, to_sql_seq(*seq), latest])?;
            }
        }
    }
    tx.commit()
}

/// The state of each `(user, room)`, read in one snapshot.
pub(super) fn read_states(
    conn: &mut Connection,
    places: &[(String, String)],
) -> rusqlite::Result<Vec<ReadState>> {
    let tx = conn.transaction()?;
    places
        .iter()
        .map(|(user, room)| read_state(&tx, room, user))
        .collect()
}

fn joined(tx: &Transaction<'_>, user: &User, room: &str, read_to: u64) -> rusqlite::Result<()> {
    let start = to_sql_seq(read_to.min(latest_seq(tx, room)?));
    tx.prepare_cached(
        "INSERT INTO members (user_id, room, user_name, name_key, last_read, joined_ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (user_id, room) DO UPDATE SET user_name = excluded.user_name,
             name_key = excluded.name_key, joined_ts = excluded.joined_ts",
    )?
    .execute(params![
        user.id,
        room,
        user.name,
        name_key(&user.name),
        start,
        now_ms()
    ])?;
    Ok(())
}

/// The members of `room` that `text` mentions, but its sender; each id
/// once, in order. Only members whose names start with a word after an
/// `@` are read.
pub(super) fn resolve_mentions(
    tx: &Transaction<'_>,
    room: &str,
    sender: &str,
    text: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut ids = Vec::new();
    for word in mention_words(text) {
        let mut candidates = tx.prepare_cached(
            "SELECT user_id, user_name FROM members
             WHERE room = ?1 AND name_key >= ?2 AND name_key < ?3",
        )?;
        let rows = candidates
            .query_map(params![room, word, upper_bound_of_prefix(&word)], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
        for row in rows {
            let (id, name) = row?;
            if id != sender && mentioned(text, &name) {
                ids.push(id);
            }
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Stores who message `seq` of `room` mentions.
pub(super) fn store_mentions(
    tx: &Transaction<'_>,
    room: &str,
    seq: u64,
    ids: &[String],
) -> rusqlite::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO mentions (user_id, room, seq) VALUES (?1, ?2, ?3)",
    )?;
    for id in ids {
        insert.execute(params![id, room, to_sql_seq(seq)])?;
    }
    let listed = mentions_column(ids);
    tx.prepare_cached("UPDATE messages SET mentions = ?3 WHERE room = ?1 AND seq = ?2")?
        .execute(params![room, to_sql_seq(seq), listed])?;
    Ok(())
}

/// The rooms `user` is a member of, the most recently active first.
pub(super) fn user_rooms(conn: &mut Connection, user: &str) -> rusqlite::Result<Vec<RoomSummary>> {
    let tx = conn.transaction()?;
    let memberships: Vec<(String, i64)> = tx
        .prepare_cached("SELECT room, last_read FROM members WHERE user_id = ?1")?
        .query_map([user], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rooms = Vec::with_capacity(memberships.len());
    for (room, last_read) in memberships {
        let (unread, unread_mentions) = counts_after(&tx, &room, user, last_read)?;
        let with = match dm_peer(&room, user) {
            Some(peer) => Some(person(&tx, &peer)?.unwrap_or(User {
                name: peer.clone(),
                id: peer,
            })),
            None => None,
        };
        rooms.push(RoomSummary {
            seq: latest_seq(&tx, &room)?,
            last: last_message(&tx, &room)?,
            room,
            last_read: last_read as u64,
            unread,
            unread_mentions,
            with,
        });
    }
    sort_by_activity(&mut rooms);
    Ok(rooms)
}

/// The latest message of `room` (not a change), in its current state.
fn last_message(conn: &Connection, room: &str) -> rusqlite::Result<Option<Message>> {
    let seq: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM messages WHERE room = ?1 AND kind = 0 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([room], |row| row.get(0))
        .optional()?;
    match seq {
        Some(seq) => current_message(conn, room, seq as u64),
        None => Ok(None),
    }
}

/// Rooms that are not direct-message rooms, the most recently active
/// first.
pub(super) fn directory(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<DirectoryEntry>> {
    conn.prepare_cached(
        "SELECT r.name, r.seq,
             (SELECT count(*) FROM members m WHERE m.room = r.name),
             (SELECT ts FROM messages e WHERE e.room = r.name AND e.seq = r.seq)
         FROM rooms r WHERE substr(r.name, 1, 3) <> 'dm:'
         ORDER BY 4 DESC, r.name LIMIT ?1",
    )?
    .query_map([limit as i64], |row| {
        Ok(DirectoryEntry {
            room: row.get(0)?,
            seq: row.get::<_, i64>(1)? as u64,
            members: row.get::<_, i64>(2)? as u64,
            last_ts: row.get(3)?,
        })
    })?
    .collect()
}

/// The user as last seen joining a room.
pub(super) fn person(conn: &Connection, user: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(
        "SELECT user_name FROM members WHERE user_id = ?1 ORDER BY joined_ts DESC LIMIT 1",
    )?
    .query_row([user], |row| {
        Ok(User {
            id: user.to_owned(),
            name: row.get(0)?,
        })
    })
    .optional()
}
