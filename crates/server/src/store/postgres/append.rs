//! Appending a batch of drafts in one transaction that holds the row lock
//! of each of its rooms' counters: see the module documentation of
//! [`super`] for the locks and the two paths, the batch of sends and the
//! draft by draft.

use std::collections::HashMap;
use std::time::Instant;

use chat_core::permissions;
use chat_core::store::{Action, Appended, Cause, Draft, Receipt, StoreError};
use chat_protocol::{Message, Quote, User};
use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::people::{
    CANDIDATES, Candidates, INSERT_MENTIONS, MentionLookup, NewMentions, candidates,
};
use super::read::{current_message, message_at, reactions_of};
use super::{Param, db_error, execute, from_sql_seq, prepare, query, query_opt, to_sql_seq};
use crate::store::entries::{Kind, allowed, changed, emoji_limit};

/// Creates (or, when it exists, row-locks) each room's counter and returns
/// its current value. Sorted so concurrent batches lock rooms in one order.
const LOCK_ROOMS: &str = "
    INSERT INTO rooms (name, seq)
    SELECT name, 0 FROM unnest($1::text[]) AS r(name) ORDER BY name
    ON CONFLICT (name) DO UPDATE SET seq = rooms.seq
    RETURNING name, seq";

/// The receipts of the stored entries among `(room, id)` pairs.
const FIND_EXISTING: &str = "
    SELECT m.room, m.id, m.seq, m.ts
    FROM messages m
    JOIN unnest($1::text[], $2::text[]) AS d(room, id) ON m.room = d.room AND m.id = d.id";

/// Stores messages that reply to nothing (`kind` 0, no `target`: the
/// columns' defaults), with whom they mention (`$8`, NULL for nobody).
const INSERT_MESSAGES: &str = "
    INSERT INTO messages (room, seq, id, user_id, user_name, text, ts, mentions)
    SELECT room, seq, id, user_id, user_name, text, $7, mentions
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                $8::text[])
        AS d(room, seq, id, user_id, user_name, text, mentions)";

const ADVANCE_ROOMS: &str = "
    UPDATE rooms SET seq = d.seq
    FROM unnest($1::text[], $2::bigint[]) AS d(name, seq)
    WHERE rooms.name = d.name";

/// Removes the counters [`LOCK_ROOMS`] created for rooms the batch stored
/// nothing in (its drafts there were all refused), so that only rooms that
/// hold entries are listed, as with SQLite.
const FORGET_UNUSED_ROOMS: &str = "DELETE FROM rooms WHERE name = ANY($1) AND seq = 0";

const RECEIPT_OF_ID: &str = "SELECT seq, ts FROM messages WHERE room = $1 AND id = $2";

const RECEIPT_OF_SEQ: &str = "SELECT id, ts FROM messages WHERE room = $1 AND seq = $2";

const INSERT_ENTRY: &str = "
    INSERT INTO messages (room, seq, id, user_id, user_name, text, ts, kind, target, emoji,
                          mentions)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

const EDIT: &str = "
    UPDATE messages SET original = COALESCE(original, text), text = $3, edited_at = $4
    WHERE room = $1 AND seq = $2";

/// Tombstones a message; its reactions and pin go with its text.
const DELETE: &str = "
    WITH reactions_gone AS (DELETE FROM reactions WHERE room = $1 AND target = $2),
         pin_gone AS (DELETE FROM pins WHERE room = $1 AND target = $2)
    UPDATE messages SET original = COALESCE(original, text), text = '', deleted = true,
        edited_at = NULL
    WHERE room = $1 AND seq = $2";

const REACTION_SEQ: &str = "
    SELECT seq FROM reactions WHERE room = $1 AND target = $2 AND emoji = $3 AND user_id = $4";

const ADD_REACTION: &str = "
    INSERT INTO reactions (room, target, emoji, user_id, user_name, seq)
    VALUES ($1, $2, $3, $4, $5, $6)";

const REMOVE_REACTION: &str = "
    DELETE FROM reactions WHERE room = $1 AND target = $2 AND emoji = $3 AND user_id = $4";

const PIN_SEQ: &str = "SELECT seq FROM pins WHERE room = $1 AND target = $2";

const ADD_PIN: &str = "INSERT INTO pins (room, target, seq) VALUES ($1, $2, $3)";

const REMOVE_PIN: &str = "DELETE FROM pins WHERE room = $1 AND target = $2";

/// Stores `drafts` in order, in one transaction. On error a transaction
/// may be left open: the caller rolls back.
pub(super) async fn append_batch(
    client: &Object,
    drafts: Vec<Draft>,
    ts: i64,
) -> Result<Vec<Appended>, StoreError> {
    if drafts.iter().all(PlainSend::fits) {
        let sends = drafts
            .into_iter()
            .filter_map(|d| PlainSend::try_from(d).ok());
        append_sends(client, sends.collect(), ts).await
    } else {
        append_one_by_one(client, drafts, ts).await
    }
}

/// A message that replies to nothing: nothing to read before storing it
/// but whether its id is taken (and, with an `@`, the members it may
/// mention), so many are stored at once.
struct PlainSend {
    room: String,
    id: String,
    from: User,
    text: String,
    /// Whom it mentions, once resolved (new sends only).
    mentions: Vec<String>,
}

impl PlainSend {
    fn fits(draft: &Draft) -> bool {
        matches!(draft.action, Action::Send { reply_to: None, .. })
    }
}

impl TryFrom<Draft> for PlainSend {
    type Error = Draft;

    fn try_from(draft: Draft) -> Result<PlainSend, Draft> {
        match draft.action {
            Action::Send {
                text,
                reply_to: None,
            } => Ok(PlainSend {
                room: draft.room,
                id: draft.id,
                from: draft.from,
                text,
                mentions: Vec::new(),
            }),
            action => Err(Draft { action, ..draft }),
        }
    }
}

/// A room's counter: its `seq` when locked, and after this batch so far.
#[derive(Clone, Copy)]
struct Counter {
    locked: u64,
    now: u64,
}

/// The counters of the batch's rooms, as [`LOCK_ROOMS`] returned them.
struct Counters(HashMap<String, Counter>);

impl Counters {
    fn from_rows(rows: Vec<Row>) -> Result<Counters, StoreError> {
        let mut counters = HashMap::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get(0).map_err(db_error)?;
            let seq = from_sql_seq(row.try_get(1).map_err(db_error)?)?;
            counters.insert(
                name,
                Counter {
                    locked: seq,
                    now: seq,
                },
            );
        }
        Ok(Counters(counters))
    }

    /// Takes the next `seq` of `room`, whose counter this batch holds.
    fn next(&mut self, room: &str) -> Result<u64, StoreError> {
        let counter = self.0.get_mut(room).ok_or_else(|| {
            StoreError::Backend(Cause::from(format!("room {room:?} was not locked")))
        })?;
        counter.now += 1;
        Ok(counter.now)
    }

    fn stored_any(&self) -> bool {
        self.0.values().any(|c| c.now != c.locked)
    }

    /// The rooms whose counter moved, with where it is now.
    fn advanced(&self) -> (Vec<&str>, Vec<i64>) {
        self.0
            .iter()
            .filter(|(_, c)| c.now != c.locked)
            .map(|(name, c)| (name.as_str(), to_sql_seq(c.now)))
            .unzip()
    }

    /// The rooms that have never stored anything.
    fn unused(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, c)| c.now == 0)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// The batch's rooms, sorted and once each, for [`LOCK_ROOMS`].
fn rooms_to_lock<'a>(rooms: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut rooms: Vec<&str> = rooms.collect();
    rooms.sort_unstable();
    rooms.dedup();
    rooms
}

/// What becomes of one send, decided while its room is locked.
enum Decision {
    /// Its id is taken, by an entry stored before or earlier in the batch.
    Duplicate(Receipt),
    /// New, with this `seq`.
    New(u64),
}

/// Decides each of `sends` in order, given the receipts of the entries
/// already stored under their ids ([`FIND_EXISTING`]'s rows), and takes a
/// `seq` for each new one, and resolves whom it mentions among
/// `candidates`.
fn decide(
    sends: &mut [PlainSend],
    found: Vec<Row>,
    candidates: &Candidates,
    counters: &mut Counters,
    ts: i64,
) -> Result<Vec<Decision>, StoreError> {
    let mut known: HashMap<(String, String), Receipt> = HashMap::with_capacity(found.len());
    for row in found {
        let room: String = row.try_get(0).map_err(db_error)?;
        let id: String = row.try_get(1).map_err(db_error)?;
        let receipt = Receipt {
            id: id.clone(),
            seq: from_sql_seq(row.try_get(2).map_err(db_error)?)?,
            ts: row.try_get(3).map_err(db_error)?,
        };
        known.insert((room, id), receipt);
    }
    let mut decisions = Vec::with_capacity(sends.len());
    for send in sends.iter_mut() {
        let key = (send.room.clone(), send.id.clone());
        if let Some(receipt) = known.get(&key) {
            decisions.push(Decision::Duplicate(receipt.clone()));
            continue;
        }
        let seq = counters.next(&send.room)?;
        let receipt = Receipt {
            id: send.id.clone(),
            seq,
            ts,
        };
        known.insert(key, receipt);
        send.mentions = candidates.mentioned_in(&send.room, &send.from.id, &send.text);
        decisions.push(Decision::New(seq));
    }
    Ok(decisions)
}

/// The columns of [`INSERT_MESSAGES`] for the new sends, and the rows of
/// `mentions` they add.
struct NewSends<'a> {
    rooms: Vec<&'a str>,
    seqs: Vec<i64>,
    ids: Vec<&'a str>,
    user_ids: Vec<&'a str>,
    user_names: Vec<&'a str>,
    texts: Vec<&'a str>,
    mentions: Vec<Option<String>>,
    mentioned: NewMentions,
}

impl<'a> NewSends<'a> {
    fn of(sends: &'a [PlainSend], decisions: &[Decision]) -> NewSends<'a> {
        let mut new = NewSends {
            rooms: Vec::new(),
            seqs: Vec::new(),
            ids: Vec::new(),
            user_ids: Vec::new(),
            user_names: Vec::new(),
            texts: Vec::new(),
            mentions: Vec::new(),
            mentioned: NewMentions::default(),
        };
        for (send, decision) in sends.iter().zip(decisions) {
            if let Decision::New(seq) = decision {
                new.rooms.push(&send.room);
                new.seqs.push(to_sql_seq(*seq));
                new.ids.push(&send.id);
                new.user_ids.push(&send.from.id);
                new.user_names.push(&send.from.name);
                new.texts.push(&send.text);
                let listed = new.mentioned.add(&send.room, *seq, &send.mentions);
                new.mentions.push(listed);
            }
        }
        new
    }

    fn params<'p>(&'p self, ts: &'p i64) -> [&'p Param<'p>; 8] {
        [
            &self.rooms,
            &self.seqs,
            &self.ids,
            &self.user_ids,
            &self.user_names,
            &self.texts,
            ts,
            &self.mentions,
        ]
    }
}

fn outcomes(sends: Vec<PlainSend>, decisions: Vec<Decision>, ts: i64) -> Vec<Appended> {
    sends
        .into_iter()
        .zip(decisions)
        .map(|(send, decision)| match decision {
            Decision::Duplicate(receipt) => Appended::Duplicate(receipt),
            Decision::New(seq) => Appended::New(Message {
                room: send.room,
                seq,
                id: send.id,
                from: send.from,
                text: send.text,
                ts,
                mentions: send.mentions,
                ..Message::default()
            }),
        })
        .collect()
}

/// The fast path, for a batch of sends only, in two round trips: `BEGIN`,
/// the room locks, the duplicate lookup and (for sends with an `@`) the
/// members they may mention go out together (PostgreSQL runs them in
/// order, so the lookup sees the rooms locked), then the inserts (of
/// mentions too, if any), the counters and `COMMIT`.
async fn append_sends(
    client: &Object,
    mut sends: Vec<PlainSend>,
    ts: i64,
) -> Result<Vec<Appended>, StoreError> {
    let rooms = rooms_to_lock(sends.iter().map(|s| s.room.as_str()));
    let send_rooms: Vec<&str> = sends.iter().map(|s| s.room.as_str()).collect();
    let send_ids: Vec<&str> = sends.iter().map(|s| s.id.as_str()).collect();
    let lookup = MentionLookup::of(sends.iter().map(|s| (s.room.as_str(), s.text.as_str())));
    let [lock, find, insert, advance] = prepare(
        client,
        [LOCK_ROOMS, FIND_EXISTING, INSERT_MESSAGES, ADVANCE_ROOMS],
    )
    .await?;
    // Prepared and run only for a batch that may mention someone: a batch
    // without an `@` costs no more than a column of NULLs.
    let [look_up, insert_mentions] = if lookup.is_empty() {
        [None, None]
    } else {
        prepare(client, [CANDIDATES, INSERT_MENTIONS])
            .await?
            .map(Some)
    };
    let lock_params: [&Param<'_>; 1] = [&rooms];
    let find_params: [&Param<'_>; 2] = [&send_rooms, &send_ids];
    let (began, locked, found, candidates) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query(&lock, &lock_params),
        client.query(&find, &find_params),
        async {
            match &look_up {
                Some(statement) => client.query(statement, &lookup.params()).await,
                None => Ok(Vec::new()),
            }
        },
    );
    began.map_err(db_error)?;
    let mut counters = Counters::from_rows(locked.map_err(db_error)?)?;
    let found = found.map_err(db_error)?;
    let candidates = Candidates::from_rows(&candidates.map_err(db_error)?)?;
    let decisions = decide(&mut sends, found, &candidates, &mut counters, ts)?;

    if !counters.stored_any() {
        // Only duplicates: nothing to store, and no commit to wait for.
        client.batch_execute("ROLLBACK").await.map_err(db_error)?;
        return Ok(outcomes(sends, decisions, ts));
    }
    let new = NewSends::of(&sends, &decisions);
    let (names, latest) = counters.advanced();
    let advance_params: [&Param<'_>; 2] = [&names, &latest];
    // After a failed statement PostgreSQL answers this COMMIT by rolling
    // back, so success is all of them succeeding.
    let insert_params = new.params(&ts);
    let syncing = Instant::now();
    let (inserted, mentioned, advanced, committed) = tokio::join!(
        client.execute(&insert, &insert_params),
        async {
            match &insert_mentions {
                Some(statement) if !new.mentioned.is_empty() => {
                    client.execute(statement, &new.mentioned.params()).await
                }
                _ => Ok(0),
            }
        },
        client.execute(&advance, &advance_params),
        client.batch_execute("COMMIT"),
    );
    metrics::histogram!(chat_core::metrics::COMMIT_SYNC).record(syncing.elapsed().as_secs_f64());
    inserted.map_err(db_error)?;
    mentioned.map_err(db_error)?;
    advanced.map_err(db_error)?;
    committed.map_err(db_error)?;
    Ok(outcomes(sends, decisions, ts))
}

/// The path for a batch with changes or replies: the rooms locked as on the
/// fast path, then each draft in order, each change or reply alone (its
/// target read, [`permissions::check`], then applied) and each run of
/// sends between them together, so the outcomes are those of SQLite's
/// draft-by-draft append.
async fn append_one_by_one(
    client: &Object,
    drafts: Vec<Draft>,
    ts: i64,
) -> Result<Vec<Appended>, StoreError> {
    let rooms = rooms_to_lock(drafts.iter().map(|d| d.room.as_str()));
    let lock = client.prepare_cached(LOCK_ROOMS).await.map_err(db_error)?;
    let lock_params: [&Param<'_>; 1] = [&rooms];
    let (began, locked) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query(&lock, &lock_params),
    );
    began.map_err(db_error)?;
    let mut batch = Batch {
        client,
        counters: Counters::from_rows(locked.map_err(db_error)?)?,
        ts,
    };
    let mut outcomes = Vec::with_capacity(drafts.len());
    let mut sends = Vec::new();
    for draft in drafts {
        match PlainSend::try_from(draft) {
            Ok(send) => sends.push(send),
            Err(draft) => {
                outcomes.extend(batch.sends(std::mem::take(&mut sends)).await?);
                outcomes.push(batch.append(draft).await?);
            }
        }
    }
    outcomes.extend(batch.sends(sends).await?);
    batch.commit().await?;
    Ok(outcomes)
}

/// A batch's transaction, its rooms locked, on the draft-by-draft path.
struct Batch<'a> {
    client: &'a Object,
    counters: Counters,
    ts: i64,
}

impl Batch<'_> {
    /// Stores a run of sends as the fast path does, in two round trips.
    async fn sends(&mut self, mut sends: Vec<PlainSend>) -> Result<Vec<Appended>, StoreError> {
        if sends.is_empty() {
            return Ok(Vec::new());
        }
        let rooms: Vec<&str> = sends.iter().map(|s| s.room.as_str()).collect();
        let ids: Vec<&str> = sends.iter().map(|s| s.id.as_str()).collect();
        let lookup = MentionLookup::of(sends.iter().map(|s| (s.room.as_str(), s.text.as_str())));
        let find_params: [&Param<'_>; 2] = [&rooms, &ids];
        let (found, candidates) = tokio::try_join!(
            query(self.client, FIND_EXISTING, &find_params),
            candidates(self.client, &lookup),
        )?;
        let decisions = decide(&mut sends, found, &candidates, &mut self.counters, self.ts)?;
        let new = NewSends::of(&sends, &decisions);
        let insert_params = new.params(&self.ts);
        let mention_params = new.mentioned.params();
        tokio::try_join!(
            async {
                if new.seqs.is_empty() {
                    return Ok(0);
                }
                execute(self.client, INSERT_MESSAGES, &insert_params).await
            },
            async {
                if new.mentioned.is_empty() {
                    return Ok(0);
                }
                execute(self.client, INSERT_MENTIONS, &mention_params).await
            },
        )?;
        Ok(outcomes(sends, decisions, self.ts))
    }

    /// Moves the counters and commits, or rolls back when nothing was
    /// stored.
    async fn commit(self) -> Result<(), StoreError> {
        if !self.counters.stored_any() {
            return self
                .client
                .batch_execute("ROLLBACK")
                .await
                .map_err(db_error);
        }
        let [advance, forget] = prepare(self.client, [ADVANCE_ROOMS, FORGET_UNUSED_ROOMS]).await?;
        let (names, latest) = self.counters.advanced();
        let unused = self.counters.unused();
        let advance_params: [&Param<'_>; 2] = [&names, &latest];
        let forget_params: [&Param<'_>; 1] = [&unused];
        let syncing = Instant::now();
        let (advanced, forgotten, committed) = tokio::join!(
            self.client.execute(&advance, &advance_params),
            self.client.execute(&forget, &forget_params),
            self.client.batch_execute("COMMIT"),
        );
        metrics::histogram!(chat_core::metrics::COMMIT_SYNC)
            .record(syncing.elapsed().as_secs_f64());
        advanced.map_err(db_error)?;
        forgotten.map_err(db_error)?;
        committed.map_err(db_error)
    }

    /// Appends one change or reply: duplicate by id first, then the target
    /// as the drafts before it left it, the permissions, and the change.
    async fn append(&mut self, draft: Draft) -> Result<Appended, StoreError> {
        let target = async {
            match draft.action.target() {
                Some(seq) => message_at(self.client, &draft.room, seq).await,
                None => Ok(None),
            }
        };
        let (receipt, target) =
            tokio::try_join!(self.receipt_of_id(&draft.room, &draft.id), target)?;
        if let Some(receipt) = receipt {
            return Ok(Appended::Duplicate(receipt));
        }
        if let Err(refusal) = allowed(&draft, target.as_ref()) {
            return Ok(Appended::Refused(refusal));
        }
        match draft.action.clone() {
            Action::Send { text, reply_to } => {
                // The quote is of the target as read: a send changes
                // nothing of it.
                let quote = target.map(|t| Quote::new(t.from, &t.text));
                self.send(draft, text, reply_to, quote).await
            }
            Action::Edit { target, text } => self.edit(draft, target, text).await,
            Action::Delete { target } => self.delete(draft, target).await,
            Action::React {
                target,
                emoji,
                remove,
            } => self.react(draft, target, emoji, remove).await,
            Action::Pin { target, remove } => self.pin(draft, target, remove).await,
        }
    }

    /// The receipt of the entry stored as `id` in `room`, if any.
    async fn receipt_of_id(&self, room: &str, id: &str) -> Result<Option<Receipt>, StoreError> {
        let Some(row) = query_opt(self.client, RECEIPT_OF_ID, &[&room, &id]).await? else {
            return Ok(None);
        };
        Ok(Some(Receipt {
            id: id.to_owned(),
            seq: from_sql_seq(row.try_get(0).map_err(db_error)?)?,
            ts: row.try_get(1).map_err(db_error)?,
        }))
    }

    /// The receipt of the entry numbered `seq` in `room`.
    async fn receipt_of_seq(&self, room: &str, seq: i64) -> Result<Receipt, StoreError> {
        let row = query_opt(self.client, RECEIPT_OF_SEQ, &[&room, &seq])
            .await?
            .ok_or_else(|| {
                StoreError::Backend(Cause::from(format!(
                    "room {room:?} has no entry {seq}, which a reaction or pin names"
                )))
            })?;
        Ok(Receipt {
            id: row.try_get(0).map_err(db_error)?,
            seq: from_sql_seq(seq)?,
            ts: row.try_get(1).map_err(db_error)?,
        })
    }

    /// Stores the draft's row with the next `seq`; returns that `seq`.
    async fn insert(
        &mut self,
        draft: &Draft,
        text: &str,
        target: Option<u64>,
        emoji: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.insert_mentioning(draft, text, target, emoji, &[])
            .await
    }

    /// Stores the draft's row with the next `seq`, and who it mentions;
    /// returns that `seq`.
    async fn insert_mentioning(
        &mut self,
        draft: &Draft,
        text: &str,
        target: Option<u64>,
        emoji: Option<&str>,
        mentions: &[String],
    ) -> Result<u64, StoreError> {
        let seq = self.counters.next(&draft.room)?;
        let kind = Kind::of(&draft.action) as i16;
        let mut mentioned = NewMentions::default();
        let listed = mentioned.add(&draft.room, seq, mentions);
        execute(
            self.client,
            INSERT_ENTRY,
            &[
                &draft.room,
                &to_sql_seq(seq),
                &draft.id,
                &draft.from.id,
                &draft.from.name,
                &text,
                &self.ts,
                &kind,
                &target.map(to_sql_seq),
                &emoji,
                &listed,
            ],
        )
        .await?;
        if !mentioned.is_empty() {
            execute(self.client, INSERT_MENTIONS, &mentioned.params()).await?;
        }
        Ok(seq)
    }

    async fn send(
        &mut self,
        draft: Draft,
        text: String,
        reply_to: Option<u64>,
        quote: Option<Quote>,
    ) -> Result<Appended, StoreError> {
        let lookup = MentionLookup::of([(draft.room.as_str(), text.as_str())]);
        let mentions = candidates(self.client, &lookup).await?.mentioned_in(
            &draft.room,
            &draft.from.id,
            &text,
        );
        let seq = self
            .insert_mentioning(&draft, &text, reply_to, None, &mentions)
            .await?;
        Ok(Appended::New(Message {
            room: draft.room,
            seq,
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

    async fn edit(
        &mut self,
        draft: Draft,
        target: u64,
        text: String,
    ) -> Result<Appended, StoreError> {
        let seq = self.insert(&draft, &text, Some(target), None).await?;
        let params: [&Param<'_>; 4] = [&draft.room, &to_sql_seq(target), &text, &self.ts];
        execute(self.client, EDIT, &params).await?;
        Ok(changed(draft, seq, self.ts, Vec::new(), None))
    }

    async fn delete(&mut self, draft: Draft, target: u64) -> Result<Appended, StoreError> {
        let seq = self.insert(&draft, "", Some(target), None).await?;
        execute(self.client, DELETE, &[&draft.room, &to_sql_seq(target)]).await?;
        Ok(changed(draft, seq, self.ts, Vec::new(), None))
    }

    async fn react(
        &mut self,
        draft: Draft,
        target: u64,
        emoji: String,
        remove: bool,
    ) -> Result<Appended, StoreError> {
        let room = draft.room.as_str();
        let target_seq = to_sql_seq(target);
        let user = draft.from.id.as_str();
        let key: [&Param<'_>; 4] = [&room, &target_seq, &emoji, &user];
        let added_at = query_opt(self.client, REACTION_SEQ, &key).await?;
        match (added_at, remove) {
            (Some(row), false) => {
                let seq = row.try_get(0).map_err(db_error)?;
                return Ok(Appended::Duplicate(self.receipt_of_seq(room, seq).await?));
            }
            (None, true) => {
                return Ok(Appended::Refused(permissions::not_found(format!(
                    "you have no {emoji} on message {target}"
                ))));
            }
            (None, false) => {
                let reactions = reactions_of(self.client, room, target).await?;
                if let Some(refusal) = emoji_limit(&reactions, target, &emoji) {
                    return Ok(Appended::Refused(refusal));
                }
            }
            (Some(_), true) => {}
        }
        let seq = self.insert(&draft, "", Some(target), Some(&emoji)).await?;
        if remove {
            execute(self.client, REMOVE_REACTION, &key).await?;
        } else {
            let name = draft.from.name.as_str();
            let params: [&Param<'_>; 6] =
                [&room, &target_seq, &emoji, &user, &name, &to_sql_seq(seq)];
            execute(self.client, ADD_REACTION, &params).await?;
        }
        let reactions = reactions_of(self.client, room, target).await?;
        Ok(changed(draft, seq, self.ts, reactions, None))
    }

    async fn pin(
        &mut self,
        draft: Draft,
        target: u64,
        remove: bool,
    ) -> Result<Appended, StoreError> {
        let room = draft.room.as_str();
        let target_seq = to_sql_seq(target);
        let pinned_at = query_opt(self.client, PIN_SEQ, &[&room, &target_seq]).await?;
        match (pinned_at, remove) {
            (Some(row), false) => {
                let seq = row.try_get(0).map_err(db_error)?;
                return Ok(Appended::Duplicate(self.receipt_of_seq(room, seq).await?));
            }
            (None, true) => {
                return Ok(Appended::Refused(permissions::not_found(format!(
                    "message {target} is not pinned"
                ))));
            }
            _ => {}
        }
        let seq = self.insert(&draft, "", Some(target), None).await?;
        let message = if remove {
            execute(self.client, REMOVE_PIN, &[&room, &target_seq]).await?;
            None
        } else {
            let params: [&Param<'_>; 3] = [&room, &target_seq, &to_sql_seq(seq)];
            execute(self.client, ADD_PIN, &params).await?;
            current_message(self.client, room, target).await?
        };
        Ok(changed(draft, seq, self.ts, Vec::new(), message))
    }
}
