//! Search: the trigram index (FTS5's `trigram` tokenizer, so a word of any
//! script is found inside longer text), kept off the commit path.
//!
//! Indexing a message as it is stored cost about 80 µs of the writer's time
//! per message at the batch sizes of a busy room (most of it flushing a new
//! index segment with every commit): some 20 % more server CPU per delivery
//! at 50 members a room. So a message is only numbered when stored
//! (`search_id`, in the order messages are stored), and the writer indexes
//! what was stored since its last pass every [`INDEX_INTERVAL`], between
//! commits, at a fraction of the cost per message; `search_state.indexed`
//! says how far it got. Edits and deletions of indexed messages change the
//! index in their own transaction, as they are rare and must show at once.
//!
//! A search reads both parts in one snapshot: the messages past `indexed`
//! by scanning them (few: at most an interval's worth), then the index, so
//! results are exact from the moment a message is acked.

use std::time::Duration;

use chat_core::store::{Found, Search, SearchScope};
use chat_core::{RoomAccess, RoomPattern};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Transaction, TransactionBehavior, params, params_from_iter};

use super::read::current_message;

/// How often the writer indexes the messages stored since its last pass.
pub(super) const INDEX_INTERVAL: Duration = Duration::from_millis(50);

/// Most messages one indexing pass takes, so a pass holds the writer (and
/// the commits waiting on it) for a few milliseconds at most.
const INDEX_BATCH: i64 = 500;

/// Indexes the messages stored since the last pass (up to
/// [`INDEX_BATCH`]); returns whether more wait.
///
/// The pass commits without an fsync of its own (`synchronous=NORMAL`):
/// the index can be rebuilt from the messages, and a crash that loses the
/// pass loses its `indexed` mark with it, so the next pass redoes it. The
/// next durable commit syncs it anyway.
pub(super) fn index_pending(conn: &mut Connection) -> rusqlite::Result<bool> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let indexed = index_batch(conn);
    conn.pragma_update(None, "synchronous", "FULL")?;
    indexed
}

fn index_batch(conn: &mut Connection) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (indexed, newest) = progress(&tx)?;
    if newest <= indexed {
        return Ok(false);
    }
    let upto = newest.min(indexed + INDEX_BATCH);
    tx.prepare_cached(
        "INSERT INTO search (rowid, text, room, seq)
         SELECT search_id, text, room, seq FROM messages
         WHERE search_id > ?1 AND search_id <= ?2 AND kind = 0 AND deleted = 0",
    )?
    .execute(params![indexed, upto])?;
    tx.prepare_cached("UPDATE search_state SET indexed = ?1")?
        .execute([upto])?;
    tx.commit()?;
    Ok(upto < newest)
}

/// How far the index got, and the newest message's number.
fn progress(tx: &Transaction<'_>) -> rusqlite::Result<(i64, i64)> {
    let indexed = tx
        .prepare_cached("SELECT indexed FROM search_state")?
        .query_row([], |r| r.get(0))?;
    Ok((indexed, newest_search_id(tx)?))
}

/// The number of the newest message (0 for none): where the next one's
/// `search_id` follows.
pub(super) fn newest_search_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(max(search_id), 0) FROM messages WHERE search_id IS NOT NULL",
    )?
    .query_row([], |r| r.get(0))
}

/// One page of a search: see `Store::search`. In the index, a word of three
/// characters or more is looked up by its trigrams (`LIKE`, which ignores
/// ASCII case); a shorter one, or one holding `LIKE`'s own `%` or `_`
/// (which an `ESCAPE` clause would keep the index from serving), is matched
/// by `instr` on the lowered text, a scan of the messages the other words
/// left. The messages not indexed yet are matched by `instr` alone.
pub(super) fn search(conn: &mut Connection, search: &Search) -> rusqlite::Result<Found> {
    if search.limit == 0 {
        return Ok(Found::default());
    }
    let Some(scope) = Scope::of(&search.rooms) else {
        return Ok(Found::default());
    };
    let tx = conn.transaction()?;
    let (indexed, _) = progress(&tx)?;
    let want = search.limit + 1;
    let mut hits = recent(&tx, search, &scope, indexed, want)?;
    if hits.len() < want {
        hits.extend(indexed_hits(&tx, search, &scope, want - hits.len())?);
    }
    let next = (hits.len() > search.limit).then(|| hits[search.limit - 1].0 as u64);
    hits.truncate(search.limit);
    let mut messages = Vec::with_capacity(hits.len());
    for (_, room, seq) in hits {
        messages.extend(current_message(&tx, &room, seq)?);
    }
    Ok(Found { messages, next })
}

/// A hit: its number, room and `seq`.
type Hit = (i64, String, u64);

/// The matching messages stored since the index's last pass, newest first.
fn recent(
    tx: &Transaction<'_>,
    search: &Search,
    scope: &Scope,
    indexed: i64,
    want: usize,
) -> rusqlite::Result<Vec<Hit>> {
    let mut query = Query::new(
        "SELECT search_id, room, seq FROM messages
         WHERE search_id > ? AND kind = 0 AND deleted = 0",
        "search_id",
    );
    query.values.push(SqlValue::Integer(indexed));
    for word in &search.words {
        query.scan_for(word);
    }
    query.finish(search, scope, want);
    query.run(tx)
}

/// The matching messages in the index, newest first.
fn indexed_hits(
    tx: &Transaction<'_>,
    search: &Search,
    scope: &Scope,
    want: usize,
) -> rusqlite::Result<Vec<Hit>> {
    let mut query = Query::new("SELECT rowid, room, seq FROM search WHERE 1", "rowid");
    for word in &search.words {
        if word.chars().count() >= 3 && !word.contains(['%', '_']) {
            query.sql.push_str(" AND text LIKE ?");
            query.values.push(SqlValue::Text(format!("%{word}%")));
        } else {
            query.scan_for(word);
        }
    }
    query.finish(search, scope, want);
    query.run(tx)
}

/// A search's rooms as SQL: a condition on `room` and its values; `None`
/// when no room can match.
struct Scope {
    sql: String,
    values: Vec<SqlValue>,
}

impl Scope {
    fn of(rooms: &SearchScope) -> Option<Scope> {
        let mut values = Vec::new();
        let sql = match rooms {
            SearchScope::Room(room) => {
                values.push(SqlValue::Text(room.clone()));
                " AND room = ?".to_owned()
            }
            SearchScope::Readable(RoomAccess::Any) => String::new(),
            SearchScope::Readable(RoomAccess::Only(patterns)) if patterns.is_empty() => {
                return None;
            }
            SearchScope::Readable(RoomAccess::Only(patterns)) => {
                let mut any = Vec::with_capacity(patterns.len());
                for pattern in patterns {
                    match pattern {
                        RoomPattern::Exact(name) => {
                            any.push("room = ?");
                            values.push(SqlValue::Text(name.clone()));
                        }
                        // Not `LIKE`, which ignores ASCII case: `team-*` must
                        // not reach `TEAM-secret`, as the claim matches
                        // exactly.
                        RoomPattern::Prefix(prefix) => {
                            any.push("substr(room, 1, length(?)) = ?");
                            values.push(SqlValue::Text(prefix.clone()));
                            values.push(SqlValue::Text(prefix.clone()));
                        }
                    }
                }
                format!(" AND ({})", any.join(" OR "))
            }
        };
        Some(Scope { sql, values })
    }
}

/// A search statement being built, over a table whose numbering column is
/// `order`.
struct Query {
    sql: String,
    values: Vec<SqlValue>,
    order: &'static str,
}

impl Query {
    fn new(select: &str, order: &'static str) -> Query {
        Query {
            sql: select.to_owned(),
            values: Vec::new(),
            order,
        }
    }

    /// Matches `word` by reading the text: anywhere in it, ASCII case
    /// ignored.
    fn scan_for(&mut self, word: &str) {
        self.sql.push_str(" AND instr(lower(text), lower(?)) > 0");
        self.values.push(SqlValue::Text(word.to_owned()));
    }

    /// Adds the rooms, the cursor, the order and the limit.
    fn finish(&mut self, search: &Search, scope: &Scope, want: usize) {
        self.sql.push_str(&scope.sql);
        self.values.extend(scope.values.iter().cloned());
        if let Some(cursor) = search.cursor {
            self.sql.push_str(&format!(" AND {} < ?", self.order));
            self.values
                .push(SqlValue::Integer(i64::try_from(cursor).unwrap_or(i64::MAX)));
        }
        self.sql
            .push_str(&format!(" ORDER BY {} DESC LIMIT ?", self.order));
        self.values.push(SqlValue::Integer(want as i64));
    }

    fn run(self, tx: &Transaction<'_>) -> rusqlite::Result<Vec<Hit>> {
        tx.prepare(&self.sql)?
            .query_map(params_from_iter(self.values), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
            })?
            .collect()
    }
}
