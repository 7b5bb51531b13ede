//! Reading a room's entries back: pages of messages in their current state
//! (with their quotes, reactions and mentions), the changes among them, the
//! pins, a page with a person's place in the room (`join_page`), a
//! message's versions, and searches (see [`search`]).
//!
//! A page takes several statements (the room's latest `seq`, the entries,
//! the pins, the reactions of all of those), which must agree with each
//! other: a reaction's list, or a pin, from after the entries were read
//! would be a state the page's `latest_seq` does not account for. So they
//! run in one `REPEATABLE READ` transaction, one snapshot, and go out
//! together with its `BEGIN` and `COMMIT`: a page costs one round trip.
//! Each statement that needs the page's entries (the reactions, the
//! messages its pin changes show) selects them again by the same bounds
//! instead of waiting for the first answer.

use std::collections::BTreeMap;

use chat_core::store::{Cause, Found, Page, ReadState, Search, SearchScope, StoreError, Version};
use chat_core::{RoomAccess, RoomPattern};
use chat_protocol::{Change, Message, Quote, Reaction, User};
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::{
    Param, db_error, from_sql_seq, people, prepare, query, query_opt, sql_limit, to_sql_seq,
};
use crate::store::entries::{
    ChangeRow, Kind, ReactionRow, like_escaped, mentions_listed, summarize,
};

/// Opens the snapshot every statement of a page reads.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// An entry's columns, in [`entry_from_row`]'s order.
macro_rules! entry_columns {
    () => {
        "seq, id, user_id, user_name, text, ts, deleted, kind, target, emoji, edited_at, \
         mentions"
    };
}

/// The entries of room `$1` in a source of [`entry_columns!`] (the table,
/// or a page of it), each followed by the author, text and tombstone of the
/// message it replies to while that is stored, for its quote as it is now.
///
/// The quoted message is looked up row by row (`LATERAL … LIMIT 1` keeps
/// the planner from joining otherwise): a plain join let the plan for any
/// page size hash every message of the room to quote a few.
macro_rules! select_entries {
    ($($source:tt)+) => {
        concat!(
            "SELECT m.seq, m.id, m.user_id, m.user_name, m.text, m.ts, m.deleted, m.kind, \
             m.target, m.emoji, m.edited_at, m.mentions, q.user_id, q.user_name, q.text, \
             q.deleted FROM ",
            $($source)+,
            " m LEFT JOIN LATERAL (\
                 SELECT user_id, user_name, text, deleted FROM messages \
                 WHERE m.kind = 0 AND room = $1 AND seq = m.target AND kind = 0 LIMIT 1\
             ) q ON true "
        )
    };
}

/// The entries of an `after` page, and one more to tell whether more exist
/// (`$1` room, `$2` bound, `$3` limit + 1).
macro_rules! after_page {
    () => {
        concat!(
            "(SELECT ",
            entry_columns!(),
            " FROM messages WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3)"
        )
    };
}

/// The messages of a `before` page, and one more.
macro_rules! before_page {
    () => {
        concat!(
            "(SELECT ",
            entry_columns!(),
            " FROM messages WHERE room = $1 AND seq < $2 AND kind = 0 \
             ORDER BY seq DESC LIMIT $3)"
        )
    };
}

/// What reactions are read with: their target and [`ReactionRow`]'s fields.
macro_rules! select_reactions {
    () => {
        "SELECT target, emoji, user_id, user_name, seq FROM reactions WHERE room = $1 "
    };
}

/// The quote and the reactions of message rows aliased `$row` (columns
/// `room`, `seq`, `target`), as [`message_from_row`] reads them (`q.*`,
/// `r.*`): for every query that returns messages in their current state.
macro_rules! quote_and_reactions {
    ($row:literal) => {
        concat!(
            " LEFT JOIN LATERAL (
                SELECT user_id, user_name, text, deleted FROM messages
                WHERE room = ",
            $row,
            ".room AND seq = ",
            $row,
            ".target AND kind = 0 LIMIT 1
            ) q ON true
            LEFT JOIN LATERAL (
                SELECT array_agg(emoji) AS emoji, array_agg(user_id) AS user_id,
                       array_agg(user_name) AS user_name, array_agg(seq) AS seq
                FROM reactions WHERE room = ",
            $row,
            ".room AND target = ",
            $row,
            ".seq
            ) r ON true "
        )
    };
}
pub(super) use quote_and_reactions;

/// The room's latest `seq` (0 for a new room).
const LATEST: &str = "SELECT COALESCE((SELECT seq FROM rooms WHERE name = $1), 0)";

// The page is cut first and its quotes looked up after: looking them up
// as the page's rows are read let the planner pick a parallel scan, whose
// workers took longer to start than the page took to read.
const AFTER_ENTRIES: &str = concat!(select_entries!(after_page!()), "ORDER BY m.seq");

const BEFORE_MESSAGES: &str = concat!(select_entries!(before_page!()), "ORDER BY m.seq DESC");

/// The room's pinned messages, earliest pin first.
const PINNED: &str = concat!(
    select_entries!("messages"),
    "JOIN pins p ON p.room = m.room AND p.target = m.seq \
     WHERE m.room = $1 AND m.kind = 0 ORDER BY p.seq"
);

/// The messages the `after` page's pins (`kind` 5) show.
const AFTER_PIN_TARGETS: &str = concat!(
    select_entries!("messages"),
    "WHERE m.room = $1 AND m.kind = 0 AND m.seq IN (SELECT target FROM ",
    after_page!(),
    " page WHERE kind = 5)"
);

/// The reactions of every message an `after` page shows: its messages, the
/// targets of its changes, and the pinned messages.
const AFTER_REACTIONS: &str = concat!(
    select_reactions!(),
    "AND target IN (SELECT CASE WHEN kind = 0 THEN seq ELSE target END FROM ",
    after_page!(),
    " page UNION ALL SELECT target FROM pins WHERE room = $1)"
);

/// The reactions of every message a `before` page shows: its messages and
/// the pinned ones.
const BEFORE_REACTIONS: &str = concat!(
    select_reactions!(),
    "AND target IN (SELECT seq FROM ",
    before_page!(),
    " page UNION ALL SELECT target FROM pins WHERE room = $1)"
);

const MESSAGE_AT: &str = concat!(
    select_entries!("messages"),
    "WHERE m.room = $1 AND m.seq = $2"
);

const REACTIONS_OF: &str = concat!(select_reactions!(), "AND target = $2");

/// A message's first text, then each edit's and deletion's entry, in
/// order. One statement, so one snapshot.
const VERSIONS: &str = "
    SELECT seq, user_id, user_name, COALESCE(original, text), ts, kind FROM messages
    WHERE room = $1 AND seq = $2 AND kind = 0
    UNION ALL
    SELECT seq, user_id, user_name, text, ts, kind FROM messages
    WHERE room = $1 AND target = $2 AND kind IN (1, 2)
    ORDER BY seq";

/// Column `i` of `row`, or a backend error when it does not convert.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(db_error)
}

fn corrupt(what: String) -> StoreError {
    StoreError::Backend(Cause::from(what))
}

/// A row of a room's sequence as read.
enum Entry {
    /// A message with its quote, without its reactions (see [`complete`]).
    Message(Message),
    Change(ChangeRow),
}

/// The entry in a row of `select_entries!`' columns.
fn entry_from_row(room: &str, row: &Row) -> Result<Entry, StoreError> {
    let seq = from_sql_seq(get(row, 0)?)?;
    let stored_kind: i16 = get(row, 7)?;
    let kind = Kind::from_stored(i64::from(stored_kind)).ok_or_else(|| {
        corrupt(format!(
            "entry {seq} of {room:?} has unknown kind {stored_kind}"
        ))
    })?;
    let target = get::<Option<i64>>(row, 8)?.map(from_sql_seq).transpose()?;
    let from = User {
        id: get(row, 2)?,
        name: get(row, 3)?,
    };
    if kind != Kind::Message {
        return Ok(Entry::Change(ChangeRow {
            seq,
            id: get(row, 1)?,
            kind,
            target: target.unwrap_or(0),
            from,
            text: get(row, 4)?,
            emoji: get::<Option<String>>(row, 9)?.unwrap_or_default(),
            ts: get(row, 5)?,
        }));
    }
    let deleted: bool = get(row, 6)?;
    // A tombstone quotes and mentions nothing, as it shows nothing.
    let quote = if deleted { None } else { quote_from_row(row)? };
    let mentions = match get::<Option<String>>(row, 11)? {
        Some(listed) if !deleted => mentions_listed(&listed),
        _ => Vec::new(),
    };
    Ok(Entry::Message(Message {
        room: room.to_owned(),
        seq,
        id: get(row, 1)?,
        from,
        text: get(row, 4)?,
        ts: get(row, 5)?,
        deleted,
        edited_at: get(row, 10)?,
        reply_to: target,
        quote,
        reactions: Vec::new(),
        mentions,
    }))
}

/// The quote in a row of `select_entries!`' columns: of the message the
/// entry replies to, if it does and that message is stored.
fn quote_from_row(row: &Row) -> Result<Option<Quote>, StoreError> {
    let Some(id) = get::<Option<String>>(row, 12)? else {
        return Ok(None);
    };
    let from = User {
        id,
        name: get(row, 13)?,
    };
    let mut quote = Quote::new(from, &get::<String>(row, 14)?);
    quote.deleted = get(row, 15)?;
    Ok(Some(quote))
}

/// The messages among rows of `select_entries!`' columns (rows selected as
/// messages hold nothing else).
fn messages_from_rows(room: &str, rows: &[Row]) -> Result<Vec<Message>, StoreError> {
    let mut messages = Vec::with_capacity(rows.len());
    for row in rows {
        if let Entry::Message(message) = entry_from_row(room, row)? {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// Each target's reactions, from rows of `select_reactions!`'s columns.
fn reactions_from_rows(rows: &[Row]) -> Result<BTreeMap<u64, Vec<Reaction>>, StoreError> {
    let rows = rows
        .iter()
        .map(|row| {
            Ok(ReactionRow {
                target: from_sql_seq(get(row, 0)?)?,
                emoji: get(row, 1)?,
                user: User {
                    id: get(row, 2)?,
                    name: get(row, 3)?,
                },
                seq: from_sql_seq(get(row, 4)?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(summarize(rows))
}

/// Gives a message read bare its reactions (a tombstone has none).
fn complete(mut message: Message, reactions: &BTreeMap<u64, Vec<Reaction>>) -> Message {
    if !message.deleted {
        message.reactions = reactions.get(&message.seq).cloned().unwrap_or_default();
    }
    message
}

/// The message at `seq` with its quote but without its reactions; `None`
/// when the room holds none there (never stored, purged, or a change).
pub(super) async fn message_at(
    client: &Object,
    room: &str,
    seq: u64,
) -> Result<Option<Message>, StoreError> {
    let Some(row) = query_opt(client, MESSAGE_AT, &[&room, &to_sql_seq(seq)]).await? else {
        return Ok(None);
    };
    Ok(match entry_from_row(room, &row)? {
        Entry::Message(message) => Some(message),
        Entry::Change(_) => None,
    })
}

/// The reactions in effect on message `target`.
pub(super) async fn reactions_of(
    client: &Object,
    room: &str,
    target: u64,
) -> Result<Vec<Reaction>, StoreError> {
    let rows = query(client, REACTIONS_OF, &[&room, &to_sql_seq(target)]).await?;
    Ok(reactions_from_rows(&rows)?
        .remove(&target)
        .unwrap_or_default())
}

/// The message at `seq` in its current state.
pub(super) async fn current_message(
    client: &Object,
    room: &str,
    seq: u64,
) -> Result<Option<Message>, StoreError> {
    let Some(message) = message_at(client, room, seq).await? else {
        return Ok(None);
    };
    let reactions = BTreeMap::from([(seq, reactions_of(client, room, seq).await?)]);
    Ok(Some(complete(message, &reactions)))
}

/// The statements that read a page, besides the latest `seq` and the pins;
/// each takes `(room, bound, limit + 1)`.
struct Shape {
    entries: &'static str,
    /// The messages the page's pin changes show (`after` only).
    pin_targets: Option<&'static str>,
    reactions: &'static str,
}

const AFTER: Shape = Shape {
    entries: AFTER_ENTRIES,
    pin_targets: Some(AFTER_PIN_TARGETS),
    reactions: AFTER_REACTIONS,
};

const BEFORE: Shape = Shape {
    entries: BEFORE_MESSAGES,
    pin_targets: None,
    reactions: BEFORE_REACTIONS,
};

/// What a page's statements answered.
struct Answers {
    latest: Row,
    entries: Vec<Row>,
    pinned: Vec<Row>,
    pin_targets: Vec<Row>,
    reactions: Vec<Row>,
    /// The place of the user the page is read for, if any
    /// ([`people::READ_STATE`]'s row).
    state: Option<Row>,
}

/// Runs a page's statements in one snapshot and one round trip, with the
/// place of `user` in the room if given.
async fn read_page(
    client: &Object,
    room: &str,
    bound: i64,
    limit: usize,
    shape: &Shape,
    user: Option<&str>,
) -> Result<Answers, StoreError> {
    let [latest, entries, pinned, reactions] =
        prepare(client, [LATEST, shape.entries, PINNED, shape.reactions]).await?;
    let pin_targets = match shape.pin_targets {
        Some(sql) => Some(client.prepare_cached(sql).await.map_err(db_error)?),
        None => None,
    };
    let state = match user {
        Some(user) => Some((
            client
                .prepare_cached(people::READ_STATE)
                .await
                .map_err(db_error)?,
            user,
        )),
        None => None,
    };
    let rows = sql_limit(limit);
    let page: [&Param<'_>; 3] = [&room, &bound, &rows];
    let room_only: [&Param<'_>; 1] = [&room];
    // Every statement is prepared already, so each goes out when first
    // polled, in this order, and PostgreSQL runs them in that order.
    let (began, latest, entries, pinned, pin_targets, reactions, state, committed) = tokio::join!(
        client.batch_execute(BEGIN_SNAPSHOT),
        client.query_one(&latest, &room_only),
        client.query(&entries, &page),
        client.query(&pinned, &room_only),
        async {
            match &pin_targets {
                Some(statement) => client.query(statement, &page).await,
                None => Ok(Vec::new()),
            }
        },
        client.query(&reactions, &page),
        async {
            match &state {
                Some((statement, user)) => {
                    client.query_one(statement, &[&room, user]).await.map(Some)
                }
                None => Ok(None),
            }
        },
        client.batch_execute("COMMIT"),
    );
    began.map_err(db_error)?;
    let answers = Answers {
        latest: latest.map_err(db_error)?,
        entries: entries.map_err(db_error)?,
        pinned: pinned.map_err(db_error)?,
        pin_targets: pin_targets.map_err(db_error)?,
        reactions: reactions.map_err(db_error)?,
        state: state.map_err(db_error)?,
    };
    committed.map_err(db_error)?;
    Ok(answers)
}

/// The pinned messages, in their current state, from a page's answers.
fn pins(
    room: &str,
    rows: &[Row],
    reactions: &BTreeMap<u64, Vec<Reaction>>,
) -> Result<Vec<Message>, StoreError> {
    Ok(messages_from_rows(room, rows)?
        .into_iter()
        .map(|m| complete(m, reactions))
        .collect())
}

pub(super) async fn page_after(
    client: &Object,
    room: &str,
    after: u64,
    limit: usize,
) -> Result<Page, StoreError> {
    let answers = read_page(client, room, to_sql_seq(after), limit, &AFTER, None).await?;
    after_from(room, answers, limit)
}

/// The page [`page_after`] reads, from its answers.
fn after_from(room: &str, mut answers: Answers, limit: usize) -> Result<Page, StoreError> {
    let more = answers.entries.len() > limit;
    answers.entries.truncate(limit);
    let reactions = reactions_from_rows(&answers.reactions)?;
    let shown: BTreeMap<u64, Message> = messages_from_rows(room, &answers.pin_targets)?
        .into_iter()
        .map(|m| (m.seq, complete(m, &reactions)))
        .collect();
    let mut messages = Vec::with_capacity(answers.entries.len());
    let mut changes: Vec<Change> = Vec::new();
    for row in &answers.entries {
        match entry_from_row(room, row)? {
            Entry::Message(message) => messages.push(complete(message, &reactions)),
            Entry::Change(change) => {
                let target = change.target;
                changes.push(change.into_change(
                    room,
                    || reactions.get(&target).cloned().unwrap_or_default(),
                    || shown.get(&target).cloned(),
                ));
            }
        }
    }
    Ok(Page {
        messages,
        changes,
        pins: pins(room, &answers.pinned, &reactions)?,
        more,
        latest_seq: from_sql_seq(get(&answers.latest, 0)?)?,
    })
}

pub(super) async fn page_before(
    client: &Object,
    room: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<Page, StoreError> {
    let bound = before.map_or(i64::MAX, to_sql_seq);
    let answers = read_page(client, room, bound, limit, &BEFORE, None).await?;
    before_from(room, answers, limit)
}

/// The page [`page_before`] reads, from its answers.
fn before_from(room: &str, mut answers: Answers, limit: usize) -> Result<Page, StoreError> {
    let more = answers.entries.len() > limit;
    answers.entries.truncate(limit);
    answers.entries.reverse();
    let reactions = reactions_from_rows(&answers.reactions)?;
    let messages = messages_from_rows(room, &answers.entries)?
        .into_iter()
        .map(|m| complete(m, &reactions))
        .collect();
    Ok(Page {
        messages,
        changes: Vec::new(),
        pins: pins(room, &answers.pinned, &reactions)?,
        more,
        latest_seq: from_sql_seq(get(&answers.latest, 0)?)?,
    })
}

/// What `Store::join_page` reads: the page after `since` (else the latest
/// one) and `user`'s place in the room, in the page's snapshot.
pub(super) async fn join_page(
    client: &Object,
    room: &str,
    user: &str,
    since: Option<u64>,
    limit: usize,
) -> Result<(Page, ReadState), StoreError> {
    let (shape, bound) = match since {
        Some(since) => (&AFTER, to_sql_seq(since)),
        None => (&BEFORE, i64::MAX),
    };
    let mut answers = read_page(client, room, bound, limit, shape, Some(user)).await?;
    let state = answers
        .state
        .take()
        .ok_or_else(|| corrupt(format!("no read state of {user:?} in {room:?}")))?;
    let state = people::read_state_from_row(&state)?;
    let page = match since {
        Some(_) => after_from(room, answers, limit)?,
        None => before_from(room, answers, limit)?,
    };
    Ok((page, state))
}

/// Every text message `seq` had: see `Store::versions`.
pub(super) async fn versions(
    client: &Object,
    room: &str,
    seq: u64,
) -> Result<Vec<Version>, StoreError> {
    let rows = query(client, VERSIONS, &[&room, &to_sql_seq(seq)]).await?;
    // The message comes first, being older than its changes; without it
    // (purged, or `seq` is a change) there is nothing to list.
    match rows.first() {
        Some(first) if get::<i16>(first, 5)? == Kind::Message as i16 => {}
        _ => return Ok(Vec::new()),
    }
    rows.iter()
        .map(|row| {
            Ok(Version {
                seq: from_sql_seq(get(row, 0)?)?,
                from: User {
                    id: get(row, 1)?,
                    name: get(row, 2)?,
                },
                text: get(row, 3)?,
                ts: get(row, 4)?,
                deleted: get::<i16>(row, 5)? == Kind::Delete as i16,
            })
        })
        .collect()
}

/// What a search selects from a page of its hits (`h`, messages found,
/// newest first): [`message_from_row`]'s columns (the entry, its quote as
/// it is now, its reactions in effect), then the room and the
/// `search_id`, so one statement, one snapshot, reads it all.
const SEARCH_SELECT: &str = "
    SELECT h.seq, h.id, h.user_id, h.user_name, h.text, h.ts, h.deleted, h.kind, h.target,
           h.emoji, h.edited_at, h.mentions, q.user_id, q.user_name, q.text, q.deleted,
           r.emoji, r.user_id, r.user_name, r.seq, h.room, h.search_id
    FROM (SELECT room, search_id, seq, id, user_id, user_name, text, ts, deleted, kind, target,
                 emoji, edited_at, mentions
          FROM messages
          WHERE kind = 0 AND NOT deleted AND search_id < $1";

/// Closes the hits' page (`$2`: its size and one more), then looks up each
/// hit's quote and reactions.
const SEARCH_REST: &str = concat!(
    " ORDER BY search_id DESC LIMIT $2) h",
    quote_and_reactions!("h"),
    "ORDER BY h.search_id DESC"
);

/// Opens the transaction a search runs in. Its statement is prepared once
/// per connection and shape, and PostgreSQL may then plan it once for any
/// words (a generic plan): with the words unknown, that plan scans the
/// messages newest first and filters them, which for a rare word reads the
/// whole table (0.4 ms with the trigram index, 200 ms without, on 200,000
/// messages). So each search is planned for its own words.
const BEGIN_SEARCH: &str = "BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan";

/// A search's statement and its parameters.
struct SearchSql {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl SearchSql {
    /// The statement for `search`, or `None` when it can find nothing (no
    /// room is readable). Its shape depends only on how many words are long
    /// and which kinds of room pattern there are, so few are prepared.
    fn of(search: &Search) -> Option<SearchSql> {
        let cursor = search.cursor.map_or(i64::MAX, to_sql_seq);
        let mut built = SearchSql {
            sql: SEARCH_SELECT.to_owned(),
            params: vec![Box::new(cursor), Box::new(sql_limit(search.limit))],
        };
        built.words(&search.words);
        built.rooms(&search.rooms)?;
        built.sql.push_str(SEARCH_REST);
        Some(built)
    }

    /// Adds a parameter; returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// A word of three characters or more is a condition of its own, which
    /// the trigram index serves; shorter ones give it no trigram to look
    /// up, so they go together into one filter on what the others left
    /// (`ILIKE ALL` is never an index condition).
    fn words(&mut self, words: &[String]) {
        let pattern = |word: &str| format!("%{}%", like_escaped(word));
        let (long, short): (Vec<&String>, Vec<&String>) =
            words.iter().partition(|w| w.chars().count() >= 3);
        for word in long {
            let placeholder = self.bind(pattern(word));
            self.sql.push_str(&format!(" AND text ILIKE {placeholder}"));
        }
        if !short.is_empty() {
            let patterns: Vec<String> = short.iter().map(|w| pattern(w)).collect();
            let placeholder = self.bind(patterns);
            self.sql
                .push_str(&format!(" AND text ILIKE ALL ({placeholder}::text[])"));
        }
    }

    /// Limits the search to `scope`'s rooms; `None` when it has none.
    fn rooms(&mut self, scope: &SearchScope) -> Option<()> {
        let patterns = match scope {
            SearchScope::Room(name) => {
                let placeholder = self.bind(name.clone());
                self.sql.push_str(&format!(" AND room = {placeholder}"));
                return Some(());
            }
            SearchScope::Readable(RoomAccess::Any) => return Some(()),
            SearchScope::Readable(RoomAccess::Only(patterns)) => patterns,
        };
        let mut names = Vec::new();
        let mut prefixes = Vec::new();
        for pattern in patterns {
            match pattern {
                RoomPattern::Exact(name) => names.push(name.clone()),
                RoomPattern::Prefix(prefix) => prefixes.push(format!("{}%", like_escaped(prefix))),
            }
        }
        let mut any = Vec::with_capacity(2);
        if !names.is_empty() {
            any.push(format!("room = ANY ({}::text[])", self.bind(names)));
        }
        if !prefixes.is_empty() {
            any.push(format!("room LIKE ANY ({}::text[])", self.bind(prefixes)));
        }
        if any.is_empty() {
            return None;
        }
        self.sql.push_str(&format!(" AND ({})", any.join(" OR ")));
        Some(())
    }
}

/// One page of a search: see `Store::search` and the module documentation
/// of [`super`]. One statement, in one round trip with its transaction.
pub(super) async fn search(client: &Object, search: &Search) -> Result<Found, StoreError> {
    // A page of none has no last result to continue after (callers ask
    // for one at least).
    if search.limit == 0 {
        return Ok(Found::default());
    }
    let Some(built) = SearchSql::of(search) else {
        return Ok(Found::default());
    };
    let statement = client.prepare_cached(&built.sql).await.map_err(db_error)?;
    let params: Vec<&Param<'_>> = built
        .params
        .iter()
        .map(|p| p.as_ref() as &Param<'_>)
        .collect();
    let (began, rows, committed) = tokio::join!(
        client.batch_execute(BEGIN_SEARCH),
        client.query(&statement, &params),
        client.batch_execute("COMMIT"),
    );
    began.map_err(db_error)?;
    let rows = rows.map_err(db_error)?;
    committed.map_err(db_error)?;
    found_from_rows(&rows, search.limit)
}

/// A page of `limit` results from the rows of a search (one more when
/// there are more), each message in its current state.
fn found_from_rows(rows: &[Row], limit: usize) -> Result<Found, StoreError> {
    let last_shown = limit.checked_sub(1).and_then(|i| rows.get(i));
    let next = match last_shown {
        Some(last) if rows.len() > limit => Some(search_id(last)?),
        _ => None,
    };
    let messages = rows
        .iter()
        .take(limit)
        .map(|row| message_from_row(&get::<String>(row, 20)?, row))
        .collect::<Result<_, _>>()?;
    Ok(Found { messages, next })
}

fn search_id(row: &Row) -> Result<u64, StoreError> {
    let id: i64 = get(row, 21)?;
    u64::try_from(id).map_err(|_| corrupt(format!("stored search_id {id} is negative")))
}

/// A message of `room` in its current state from a row that holds, first,
/// the columns of `select_entries!` (the entry and its quote), then the
/// message's reactions in effect as arrays of [`ReactionRow`]'s fields
/// (NULL when there are none), as a search's or a person's rooms' rows do.
pub(super) fn message_from_row(room: &str, row: &Row) -> Result<Message, StoreError> {
    let Entry::Message(message) = entry_from_row(room, row)? else {
        return Err(corrupt(format!("a change of {room:?} read as a message")));
    };
    let emoji: Vec<String> = get::<Option<_>>(row, 16)?.unwrap_or_default();
    let user_ids: Vec<String> = get::<Option<_>>(row, 17)?.unwrap_or_default();
    let user_names: Vec<String> = get::<Option<_>>(row, 18)?.unwrap_or_default();
    let seqs: Vec<i64> = get::<Option<_>>(row, 19)?.unwrap_or_default();
    let reactions = emoji
        .into_iter()
        .zip(user_ids.into_iter().zip(user_names))
        .zip(seqs)
        .map(|((emoji, (id, name)), seq)| {
            Ok(ReactionRow {
                target: message.seq,
                emoji,
                user: User { id, name },
                seq: from_sql_seq(seq)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(complete(message, &summarize(reactions)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_the_statements_name_by_number_are_those_stored() {
        let named = [Kind::Message, Kind::Edit, Kind::Delete, Kind::Pin].map(Kind::stored);
        assert_eq!(named, [0, 1, 2, 5]);
    }
}
