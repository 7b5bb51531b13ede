//! Appending a batch of drafts: each takes its room's next `seq` in the
//! batch's one transaction, and a change is applied to its target there,
//! after [`permissions::check`] allowed it on the target as it is then.

use std::collections::HashMap;
use std::time::Instant;

use chat_core::permissions;
use chat_core::store::{Action, Appended, Draft, Receipt};
use chat_protocol::Message;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::people::{resolve_mentions, store_mentions};
use super::read::{bare_message, current_message, quote_of, reactions_of};
use super::search::newest_search_id;
use super::{latest_seq, to_sql_seq};
use crate::store::entries::{Kind, allowed, changed, emoji_limit};

pub(super) fn append_batch(
    conn: &mut Connection,
    drafts: Vec<Draft>,
    ts: i64,
) -> rusqlite::Result<Vec<Appended>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut batch = Batch {
        tx: &tx,
        seqs: HashMap::new(),
        search_id: None,
        ts,
    };
    let mut outcomes = Vec::with_capacity(drafts.len());
    for draft in drafts {
        outcomes.push(batch.append(draft)?);
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO rooms (name, seq) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
    )?;
    for (room, seq) in &batch.seqs {
        upsert.execute(params![room, to_sql_seq(*seq)])?;
    }
    drop(upsert);
    let syncing = Instant::now();
    tx.commit()?;
    metrics::histogram!(chat_core::metrics::COMMIT_SYNC).record(syncing.elapsed().as_secs_f64());
    Ok(outcomes)
}

/// One batch's transaction, each room's latest `seq` in it so far, and
/// the search index's latest number.
struct Batch<'a> {
    tx: &'a Transaction<'a>,
    seqs: HashMap<String, u64>,
    search_id: Option<i64>,
    ts: i64,
}

impl Batch<'_> {
    fn append(&mut self, draft: Draft) -> rusqlite::Result<Appended> {
        if let Some(receipt) = self.receipt_of_id(&draft.room, &draft.id)? {
            return Ok(Appended::Duplicate(receipt));
        }
        let target = match draft.action.target() {
            Some(seq) => bare_message(self.tx, &draft.room, seq)?,
            None => None,
        };
        if let Err(refusal) = allowed(&draft, target.as_ref()) {
            return Ok(Appended::Refused(refusal));
        }
        match draft.action.clone() {
            Action::Send { text, reply_to } => self.send(draft, text, reply_to),
            Action::Edit { target, text } => self.edit(draft, target, text),
            Action::Delete { target } => self.delete(draft, target),
            Action::React {
                target,
                emoji,
                remove,
            } => self.react(draft, target, emoji, remove),
            Action::Pin { target, remove } => self.pin(draft, target, remove),
        }
    }

    /// The receipt of the entry stored as `id` in `room`, if any.
    fn receipt_of_id(&self, room: &str, id: &str) -> rusqlite::Result<Option<Receipt>> {
        self.tx
            .prepare_cached("SELECT seq, ts FROM messages WHERE room = ?1 AND id = ?2")?
            .query_row(params![room, id], |row| {
                Ok(Receipt {
                    id: id.to_owned(),
                    seq: row.get::<_, i64>(0)? as u64,
                    ts: row.get(1)?,
                })
            })
            .optional()
    }

    /// The receipt of the entry numbered `seq` in `room`.
    fn receipt_of_seq(&self, room: &str, seq: i64) -> rusqlite::Result<Receipt> {
        self.tx
            .prepare_cached("SELECT id, ts FROM messages WHERE room = ?1 AND seq = ?2")?
            .query_row(params![room, seq], |row| {
                Ok(Receipt {
                    id: row.get(0)?,
                    seq: seq as u64,
                    ts: row.get(1)?,
                })
            })
    }

    /// The next number of the search index.
    fn next_search_id(&mut self) -> rusqlite::Result<i64> {
        let next = match self.search_id {
            Some(last) => last + 1,
            None => newest_search_id(self.tx)? + 1,
        };
        self.search_id = Some(next);
        Ok(next)
    }

    /// The next `seq` of `room` in this batch.
    fn next_seq(&mut self, room: &str) -> rusqlite::Result<u64> {
        let seq = match self.seqs.get_mut(room) {
            Some(seq) => seq,
            None => {
                let latest = latest_seq(self.tx, room)?;
                self.seqs.entry(room.to_owned()).or_insert(latest)
            }
        };
        *seq += 1;
        Ok(*seq)
    }

    /// Stores the draft's row with the next `seq`; returns that `seq`. A
    /// message also takes the next number of the search index, which
    /// indexes it shortly (`search`).
    fn insert(
        &mut self,
        draft: &Draft,
        text: &str,
        target: Option<u64>,
        emoji: Option<&str>,
    ) -> rusqlite::Result<u64> {
        let seq = self.next_seq(&draft.room)?;
        let kind = Kind::of(&draft.action);
        let search_id = match kind {
            Kind::Message => Some(self.next_search_id()?),
            _ => None,
        };
        self.tx
            .prepare_cached(
                "INSERT INTO messages
                     (room, seq, id, user_id, user_name, text, ts, kind, target, emoji, search_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                draft.room,
                to_sql_seq(seq),
                draft.id,
                draft.from.id,
                draft.from.name,
                text,
                self.ts,
                kind.stored(),
                target.map(to_sql_seq),
                emoji,
                search_id,
            ])?;
        Ok(seq)
    }

    fn send(
        &mut self,
        draft: Draft,
        text: String,
        reply_to: Option<u64>,
    ) -> rusqlite::Result<Appended> {
        let seq = self.insert(&draft, &text, reply_to, None)?;
        let mentions = if text.contains('@') {
            resolve_mentions(self.tx, &draft.room, &draft.from.id, &text)?
        } else {
            Vec::new()
        };
        store_mentions(self.tx, &draft.room, seq, &mentions)?;
        let quote = match reply_to {
            Some(quoted) => quote_of(self.tx, &draft.room, quoted)?,
            None => None,
        };
        Ok(Appended::New(Message {
            seq,
            room: draft.room,
            id: draft.id,
            from: draft.from,
            text,
            ts: self.ts,
            reply_to,
            quote,
            mentions,
            ..Message::default()
        }))
    }

    fn edit(&mut self, draft: Draft, target: u64, text: String) -> rusqlite::Result<Appended> {
        let seq = self.insert(&draft, &text, Some(target), None)?;
        self.tx
            .prepare_cached(
                "UPDATE messages SET original = COALESCE(original, text), text = ?3, edited_at = ?4
                 WHERE room = ?1 AND seq = ?2",
            )?
            .execute(params![draft.room, to_sql_seq(target), text, self.ts])?;
        self.tx
            .prepare_cached(
                "UPDATE search SET text = ?3 WHERE rowid =
                     (SELECT search_id FROM messages WHERE room = ?1 AND seq = ?2)",
            )?
            .execute(params![draft.room, to_sql_seq(target), text])?;
        Ok(changed(draft, seq, self.ts, Vec::new(), None))
    }

    fn delete(&mut self, draft: Draft, target: u64) -> rusqlite::Result<Appended> {
        let seq = self.insert(&draft, "", Some(target), None)?;
        let room = &draft.room;
        let target_seq = to_sql_seq(target);
        self.tx
            .prepare_cached(
                "DELETE FROM search WHERE rowid =
                     (SELECT search_id FROM messages WHERE room = ?1 AND seq = ?2)",
            )?
            .execute(params![room, target_seq])?;
        self.tx
            .prepare_cached(
                "UPDATE messages SET original = COALESCE(original, text), text = '', deleted = 1,
                 edited_at = NULL WHERE room = ?1 AND seq = ?2",
            )?
            .execute(params![room, target_seq])?;
        self.tx
            .prepare_cached("DELETE FROM reactions WHERE room = ?1 AND target = ?2")?
            .execute(params![room, target_seq])?;
        self.tx
            .prepare_cached("DELETE FROM pins WHERE room = ?1 AND target = ?2")?
            .execute(params![room, target_seq])?;
        Ok(changed(draft, seq, self.ts, Vec::new(), None))
    }

    fn react(
        &mut self,
        draft: Draft,
        target: u64,
        emoji: String,
        remove: bool,
    ) -> rusqlite::Result<Appended> {
        let room = &draft.room;
        let target_seq = to_sql_seq(target);
        let added_at: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT seq FROM reactions
                 WHERE room = ?1 AND target = ?2 AND emoji = ?3 AND user_id = ?4",
            )?
            .query_row(params![room, target_seq, emoji, draft.from.id], |r| {
                r.get(0)
            })
            .optional()?;
        match (added_at, remove) {
            (Some(seq), false) => return Ok(Appended::Duplicate(self.receipt_of_seq(room, seq)?)),
            (None, true) => {
                return Ok(Appended::Refused(permissions::not_found(format!(
                    "you have no {emoji} on message {target}"
                ))));
            }
            (None, false) => {
                let reactions = reactions_of(self.tx, room, target)?;
                if let Some(refusal) = emoji_limit(&reactions, target, &emoji) {
                    return Ok(Appended::Refused(refusal));
                }
            }
            (Some(_), true) => {}
        }
        let seq = self.insert(&draft, "", Some(target), Some(&emoji))?;
        if remove {
            self.tx
                .prepare_cached(
                    "DELETE FROM reactions
                     WHERE room = ?1 AND target = ?2 AND emoji = ?3 AND user_id = ?4",
                )?
                .execute(params![room, target_seq, emoji, draft.from.id])?;
        } else {
            self.tx
                .prepare_cached(
                    "INSERT INTO reactions (room, target, emoji, user_id, user_name, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    room,
                    target_seq,
                    emoji,
                    draft.from.id,
                    draft.from.name,
                    to_sql_seq(seq)
                ])?;
        }
        let reactions = reactions_of(self.tx, room, target)?;
        Ok(changed(draft, seq, self.ts, reactions, None))
    }

    fn pin(&mut self, draft: Draft, target: u64, remove: bool) -> rusqlite::Result<Appended> {
        let room = &draft.room;
        let target_seq = to_sql_seq(target);
        let pinned_at: Option<i64> = self
            .tx
            .prepare_cached("SELECT seq FROM pins WHERE room = ?1 AND target = ?2")?
            .query_row(params![room, target_seq], |r| r.get(0))
            .optional()?;
        match (pinned_at, remove) {
            (Some(seq), false) => return Ok(Appended::Duplicate(self.receipt_of_seq(room, seq)?)),
            (None, true) => {
                return Ok(Appended::Refused(permissions::not_found(format!(
                    "message {target} is not pinned"
                ))));
            }
            _ => {}
        }
        let seq = self.insert(&draft, "", Some(target), None)?;
        if remove {
            self.tx
                .prepare_cached("DELETE FROM pins WHERE room = ?1 AND target = ?2")?
                .execute(params![room, target_seq])?;
        } else {
            self.tx
                .prepare_cached("INSERT INTO pins (room, target, seq) VALUES (?1, ?2, ?3)")?
                .execute(params![room, target_seq, to_sql_seq(seq)])?;
        }
        let message = if remove {
            None
        } else {
            current_message(self.tx, room, target)?
        };
        Ok(changed(draft, seq, self.ts, Vec::new(), message))
    }
}
