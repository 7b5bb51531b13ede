//! Reading a room's entries back: pages of messages in their current state
//! (with their quotes and reactions), the changes among them, the pins,
//! and a message's versions.

use std::collections::{BTreeMap, BTreeSet, btree_map};

use chat_core::store::{Page, Version};
use chat_protocol::{Change, Message, Quote, Reaction, User};
use rusqlite::{Connection, OptionalExtension, params};

use super::{latest_seq, to_sql_seq};
use crate::store::entries::{ChangeRow, Kind, ReactionRow, mentions_listed, summarize};

/// The columns every entry read takes, in [`entry_from_row`]'s order.
pub(super) const SELECT_ENTRY: &str = "SELECT seq, id, user_id, user_name, text, ts, deleted, \
     kind, target, emoji, edited_at, mentions FROM messages";

/// A row of a room's sequence as read.
pub(super) enum Entry {
    /// A message, without its quote and reactions (see [`complete`]).
    Message(Message),
    Change(ChangeRow),
}

pub(super) fn entry_from_row(room: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let seq = row.get::<_, i64>(0)? as u64;
    let id = row.get(1)?;
    let from = User {
        id: row.get(2)?,
        name: row.get(3)?,
    };
    let text = row.get(4)?;
    let ts = row.get(5)?;
    let stored_kind: i64 = row.get(7)?;
    let target = row.get::<_, Option<i64>>(8)?.map(|t| t as u64);
    let kind = Kind::from_stored(stored_kind)
        .ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(7, stored_kind))?;
    if kind == Kind::Message {
        let deleted: bool = row.get(6)?;
        let mentions = match row.get::<_, Option<String>>(11)? {
            Some(listed) if !deleted => mentions_listed(&listed),
            _ => Vec::new(),
        };
        return Ok(Entry::Message(Message {
            room: room.to_owned(),
            seq,
            id,
            from,
            text,
            ts,
            deleted,
            edited_at: row.get(10)?,
            reply_to: target,
            mentions,
            ..Message::default()
        }));
    }
    Ok(Entry::Change(ChangeRow {
        seq,
        id,
        kind,
        target: target.unwrap_or(0),
        from,
        text,
        emoji: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
        ts,
    }))
}

/// The message at `seq`, without quote and reactions; `None` when there
/// is none (or the entry there is a change).
pub(super) fn bare_message(
    conn: &Connection,
    room: &str,
    seq: u64,
) -> rusqlite::Result<Option<Message>> {
    let entry = conn
        .prepare_cached(&format!("{SELECT_ENTRY} WHERE room = ?1 AND seq = ?2"))?
        .query_row(params![room, to_sql_seq(seq)], |row| {
            entry_from_row(room, row)
        })
        .optional()?;
    Ok(match entry {
        Some(Entry::Message(message)) => Some(message),
        _ => None,
    })
}

/// Fills in the quotes and reactions of messages read bare.
pub(super) fn complete(
    conn: &Connection,
    room: &str,
    messages: &mut [Message],
) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(());
    };
    let mut reactions = reactions_between(conn, room, first.seq, last.seq)?;
    let mut quotes = BTreeMap::new();
    for message in messages.iter_mut() {
        if !message.deleted {
            message.reactions = reactions.remove(&message.seq).unwrap_or_default();
            if let Some(quoted) = message.reply_to {
                if let btree_map::Entry::Vacant(slot) = quotes.entry(quoted) {
                    slot.insert(quote_of(conn, room, quoted)?);
                }
                message.quote = quotes[&quoted].clone();
            }
        }
    }
    Ok(())
}

/// The message at `seq` in its current state.
pub(super) fn current_message(
    conn: &Connection,
    room: &str,
    seq: u64,
) -> rusqlite::Result<Option<Message>> {
    let Some(message) = bare_message(conn, room, seq)? else {
        return Ok(None);
    };
    let mut one = [message];
    complete(conn, room, &mut one)?;
    let [message] = one;
    Ok(Some(message))
}

/// The quote of message `seq` as it is now; `None` once it is purged.
pub(super) fn quote_of(conn: &Connection, room: &str, seq: u64) -> rusqlite::Result<Option<Quote>> {
    Ok(bare_message(conn, room, seq)?.map(|quoted| {
        let mut quote = Quote::new(quoted.from, &quoted.text);
        quote.deleted = quoted.deleted;
        quote
    }))
}

/// The reactions in effect on the messages from `first` to `last`.
fn reactions_between(
    conn: &Connection,
    room: &str,
    first: u64,
    last: u64,
) -> rusqlite::Result<BTreeMap<u64, Vec<Reaction>>> {
    let rows = conn
        .prepare_cached(
            "SELECT target, emoji, user_id, user_name, seq FROM reactions
             WHERE room = ?1 AND target BETWEEN ?2 AND ?3",
        )?
        .query_map(params![room, to_sql_seq(first), to_sql_seq(last)], |row| {
            Ok(ReactionRow {
                target: row.get::<_, i64>(0)? as u64,
                emoji: row.get(1)?,
                user: User {
                    id: row.get(2)?,
                    name: row.get(3)?,
                },
                seq: row.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(summarize(rows))
}

/// The reactions in effect on message `target`.
pub(super) fn reactions_of(
    conn: &Connection,
    room: &str,
    target: u64,
) -> rusqlite::Result<Vec<Reaction>> {
    Ok(reactions_between(conn, room, target, target)?
        .remove(&target)
        .unwrap_or_default())
}

/// The room's pinned messages in their current state, earliest pin first.
fn pins(conn: &Connection, room: &str) -> rusqlite::Result<Vec<Message>> {
    let targets = conn
        .prepare_cached("SELECT target FROM pins WHERE room = ?1 ORDER BY seq")?
        .query_map([room], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut pinned = Vec::with_capacity(targets.len());
    for target in targets {
        pinned.extend(current_message(conn, room, target as u64)?);
    }
    Ok(pinned)
}

/// Changes as the protocol shows them, each reaction with its target's
/// reactions now and each pin with its message now.
fn changes(conn: &Connection, room: &str, rows: Vec<ChangeRow>) -> rusqlite::Result<Vec<Change>> {
    let reacted: BTreeSet<u64> = rows
        .iter()
        .filter(|r| matches!(r.kind, Kind::React | Kind::Unreact))
        .map(|r| r.target)
        .collect();
    let mut reactions = BTreeMap::new();
    for target in reacted {
        reactions.insert(target, reactions_of(conn, room, target)?);
    }
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let pinned = match row.kind {
            Kind::Pin => current_message(conn, room, row.target)?,
            _ => None,
        };
        let target = row.target;
        changes.push(row.into_change(
            room,
            || reactions.get(&target).cloned().unwrap_or_default(),
            || pinned,
        ));
    }
    Ok(changes)
}

pub(super) fn page_after(
    conn: &mut Connection,
    room: &str,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Page> {
    let tx = conn.transaction()?;
    let latest_seq = latest_seq(&tx, room)?;
    let mut entries = tx
        .prepare_cached(&format!(
            "{SELECT_ENTRY} WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?
        .query_map(params![room, to_sql_seq(after), limit as i64 + 1], |row| {
            entry_from_row(room, row)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let mut messages = Vec::with_capacity(entries.len());
    let mut change_rows = Vec::new();
    for entry in entries {
        match entry {
            Entry::Message(message) => messages.push(message),
            Entry::Change(row) => change_rows.push(row),
        }
    }
    complete(&tx, room, &mut messages)?;
    Ok(Page {
        messages,
        changes: changes(&tx, room, change_rows)?,
        pins: pins(&tx, room)?,
        more,
        latest_seq,
    })
}

pub(super) fn page_before(
    conn: &mut Connection,
    room: &str,
    before: Option<u64>,
    limit: usize,
) -> rusqlite::Result<Page> {
    let tx = conn.transaction()?;
    let latest_seq = latest_seq(&tx, room)?;
    let before = before.map_or(i64::MAX, to_sql_seq);
    let mut messages = tx
        .prepare_cached(&format!(
            "{SELECT_ENTRY} WHERE room = ?1 AND seq < ?2 AND kind = 0 ORDER BY seq DESC LIMIT ?3"
        ))?
        .query_map(params![room, before, limit as i64 + 1], |row| {
            entry_from_row(room, row)
        })?
        .filter_map(|entry| match entry {
            Ok(Entry::Message(message)) => Some(Ok(message)),
            Ok(Entry::Change(_)) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = messages.len() > limit;
    messages.truncate(limit);
    messages.reverse();
    complete(&tx, room, &mut messages)?;
    Ok(Page {
        messages,
        changes: Vec::new(),
        pins: pins(&tx, room)?,
        more,
        latest_seq,
    })
}

/// Every text message `seq` had: see `Store::versions`.
pub(super) fn versions(
    conn: &mut Connection,
    room: &str,
    seq: u64,
) -> rusqlite::Result<Vec<Version>> {
    let tx = conn.transaction()?;
    let original: Option<(String, User, i64)> = tx
        .prepare_cached(
            "SELECT COALESCE(original, text), user_id, user_name, ts FROM messages
             WHERE room = ?1 AND seq = ?2 AND kind = 0",
        )?
        .query_row(params![room, to_sql_seq(seq)], |row| {
            Ok((
                row.get(0)?,
                User {
                    id: row.get(1)?,
                    name: row.get(2)?,
                },
                row.get(3)?,
            ))
        })
        .optional()?;
    let Some((text, from, ts)) = original else {
        return Ok(Vec::new());
    };
    let mut versions = vec![Version {
        seq,
        from,
        text,
        ts,
        deleted: false,
    }];
    let changes = tx
        .prepare_cached(&format!(
            "{SELECT_ENTRY} WHERE room = ?1 AND target = ?2 AND kind IN (1, 2) ORDER BY seq"
        ))?
        .query_map(params![room, to_sql_seq(seq)], |row| {
            entry_from_row(room, row)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for entry in changes {
        if let Entry::Change(change) = entry {
            versions.push(Version {
                seq: change.seq,
                deleted: change.kind == Kind::Delete,
                from: change.from,
                text: change.text,
                ts: change.ts,
            });
        }
    }
    Ok(versions)
}
