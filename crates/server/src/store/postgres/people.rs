//! People in the shared store: memberships with read markers (`members`),
//! who each message mentions (`mentions`, and the message's `mentions`
//! column for reading it back), and the servers' shared secrets. See the
//! module documentation of [`super`] for how these meet the appends and
//! the other nodes.
//!
//! Counts are read, not kept, as in SQLite: unread is a range of the
//! room's primary key (`seq` after the marker), mentions a range of
//! `mentions`' key, so they stay exact whatever deletes, purges and
//! concurrent senders do, and a send writes nothing per member.

use std::collections::HashMap;

use chat_core::committer::now_ms;
use chat_core::store::{Cause, PersonChange, ReadState, StoreError};
use chat_protocol::people::{DM_PREFIX, dm_peer, mention_words, mentioned, name_key};
use chat_protocol::{DirectoryEntry, RoomSummary, User};
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::read::{message_from_row, quote_and_reactions};
use super::{Param, db_error, from_sql_seq, prepare, query, query_opt, to_sql_seq};
use crate::store::entries::{mentions_column, sort_by_activity, upper_bound_of_prefix};

/// The two counts of a [`ReadState`] for the member row `b` (NULL when
/// there is none, which counts nothing): the messages of its room after
/// its marker, not deleted, from others; and those of them that mention
/// the member.
macro_rules! counts_after_marker {
    () => {
        "(SELECT count(*) FROM messages e
          WHERE e.room = b.room AND e.seq > b.last_read AND e.kind = 0 AND NOT e.deleted
            AND e.user_id <> b.user_id),
         (SELECT count(*) FROM mentions t JOIN messages e ON e.room = t.room AND e.seq = t.seq
          WHERE t.user_id = b.user_id AND t.room = b.room AND t.seq > b.last_read
            AND NOT e.deleted)"
    };
}

/// The room's latest `seq` (0 for a new room), as the source `l`.
macro_rules! latest_of {
    ($room:literal) => {
        concat!(
            "(SELECT COALESCE((SELECT seq FROM rooms WHERE name = ",
            $room,
            "), 0) AS seq)"
        )
    };
}

/// User `$2`'s place in room `$1`: the room's latest `seq`, then the
/// member's marker, name and counts (NULL, NULL, 0, 0 for a non-member),
/// as [`read_state_from_row`] reads them. One row, always.
pub(super) const READ_STATE: &str = concat!(
    "SELECT l.seq, b.last_read, b.user_name, ",
    counts_after_marker!(),
    " FROM ",
    latest_of!("$1"),
    " l LEFT JOIN members b ON b.user_id = $2 AND b.room = $1"
);

/// Moves user `$2`'s marker in room `$1` to `$3`, never back and never
/// past the room's latest `seq`, and returns their place after it as
/// [`READ_STATE`] does (a non-member is not moved). The update's own
/// result is read: the rest of the statement sees the row as it was.
const READ: &str = concat!(
    "WITH l AS ",
    latest_of!("$1"),
    ", b AS (
        UPDATE members SET last_read = GREATEST(last_read, LEAST($3, (SELECT seq FROM l)))
        WHERE user_id = $2 AND room = $1
        RETURNING user_id, room, last_read, user_name)
     SELECT l.seq, b.last_read, b.user_name, ",
    counts_after_marker!(),
    " FROM l LEFT JOIN b ON true"
);

/// Makes user `$2` (named `$3`, `$4` in lower case) a member of room `$1`
/// at `$6`, with the marker at `$5`, at most the room's latest `seq`; a
/// member already keeps their marker and takes the new name.
const JOIN: &str = "
    INSERT INTO members (user_id, room, user_name, name_key, last_read, joined_ts)
    VALUES ($2, $1, $3, $4, LEAST($5, COALESCE((SELECT seq FROM rooms WHERE name = $1), 0)),
            $6)
    ON CONFLICT (user_id, room) DO UPDATE SET user_name = excluded.user_name,
        name_key = excluded.name_key, joined_ts = excluded.joined_ts";

const LEAVE: &str = "DELETE FROM members WHERE room = $1 AND user_id = $2";

/// The members of each room `$1[i]` whose `name_key` starts with the
/// mention word `$2[i]` (`$3[i]` is the least string above every such
/// name, see [`upper_bound_of_prefix`]): a range of `members_room_name`,
/// whose column compares bytewise, as SQLite's does.
pub(super) const CANDIDATES: &str = "
    SELECT d.room, d.word, m.user_id, m.user_name
    FROM unnest($1::text[], $2::text[], $3::text[]) AS d(room, word, bound)
    JOIN members m ON m.room = d.room AND m.name_key >= d.word AND m.name_key < d.bound";

/// Stores mentions: user `$1[i]` by message `$3[i]` of room `$2[i]`.
pub(super) const INSERT_MENTIONS: &str = "
    INSERT INTO mentions (user_id, room, seq)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
    ON CONFLICT DO NOTHING";

/// User `$1`'s rooms, each with its latest message in its current state
/// (all NULL when it has none) in [`message_from_row`]'s columns, then the
/// room, the member's marker, the room's latest `seq` and the counts.
const USER_ROOMS: &str = concat!(
    "SELECT x.seq, x.id, x.user_id, x.user_name, x.text, x.ts, x.deleted, x.kind, x.target,
            x.emoji, x.edited_at, x.mentions, q.user_id, q.user_name, q.text, q.deleted,
            r.emoji, r.user_id, r.user_name, r.seq,
            b.room, b.last_read, COALESCE(s.seq, 0), ",
    counts_after_marker!(),
    " FROM members b
     LEFT JOIN rooms s ON s.name = b.room
     LEFT JOIN LATERAL (
         SELECT room, seq, id, user_id, user_name, text, ts, deleted, kind, target, emoji,
                edited_at, mentions
         FROM messages WHERE room = b.room AND kind = 0 ORDER BY seq DESC LIMIT 1
     ) x ON true",
    quote_and_reactions!("x"),
    "WHERE b.user_id = $1"
);

/// Each of users `$1` with the name they last joined a room under.
const PEOPLE: &str = "
    SELECT DISTINCT ON (user_id) user_id, user_name FROM members
    WHERE user_id = ANY($1) ORDER BY user_id, joined_ts DESC";

/// Up to `$1` rooms whose names do not start with `$2` (direct-message
/// rooms'), the most recently active first: the `ts` of the entry at the
/// room's `seq`, rooms without one (purged) last, as SQLite orders NULL.
const DIRECTORY: &str = "
    SELECT r.name, r.seq,
        (SELECT count(*) FROM members m WHERE m.room = r.name),
        (SELECT ts FROM messages e WHERE e.room = r.name AND e.seq = r.seq) AS last_ts
    FROM rooms r WHERE NOT starts_with(r.name, $2)
    ORDER BY last_ts DESC NULLS LAST, r.name COLLATE \"C\" LIMIT $1";

const PERSON: &str =
    "SELECT user_name FROM members WHERE user_id = $1 ORDER BY joined_ts DESC LIMIT 1";

const KEEP_SECRET: &str =
    "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

const SECRET: &str = "SELECT value FROM secrets WHERE name = $1";

/// Opens the snapshot a person's rooms are read in.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Column `i` of `row`, or a backend error when it does not convert.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(db_error)
}

/// A `count(*)` column.
fn count(row: &Row, i: usize) -> Result<u64, StoreError> {
    let n: i64 = get(row, i)?;
    u64::try_from(n).map_err(|_| StoreError::Backend(Cause::from(format!("a count of {n}"))))
}

/// The place a row of [`READ_STATE`] (or [`READ`]) describes. A user who
/// is no member has read everything.
pub(super) fn read_state_from_row(row: &Row) -> Result<ReadState, StoreError> {
    let Some(name) = get::<Option<String>>(row, 2)? else {
        return Ok(ReadState {
            last_read: from_sql_seq(get(row, 0)?)?,
            ..ReadState::default()
        });
    };
    Ok(ReadState {
        last_read: from_sql_seq(get(row, 1)?)?,
        unread: count(row, 3)?,
        unread_mentions: count(row, 4)?,
        member_name: Some(name),
    })
}

/// Stores `changes` in one transaction, in one round trip; the state
/// after each `Read`, in order. On error a transaction may be left open:
/// the caller rolls back.
///
/// Changes of different `(user, room)` pairs commute (each writes its own
/// member row and reads only that and the rooms' entries, which no change
/// writes), so they run sorted by pair, each pair's in their order: two
/// nodes' batches then lock the member rows they share in the same order,
/// and cannot deadlock.
pub(super) async fn record(
    client: &Object,
    changes: &[PersonChange],
) -> Result<Vec<ReadState>, StoreError> {
    let [join, leave, read] = prepare(client, [JOIN, LEAVE, READ]).await?;
    let joined_ts = now_ms();
    let mut order: Vec<(usize, &PersonChange)> = changes.iter().enumerate().collect();
    order.sort_by(|(_, a), (_, b)| pair(a).cmp(&pair(b)));
    let statements = order.iter().map(|&(at, change)| {
        let (join, leave, read) = (&join, &leave, &read);
        async move {
            match change {
                PersonChange::Joined {
                    user,
                    room,
                    read_to,
                } => {
                    let key = name_key(&user.name);
                    let read_to = to_sql_seq(*read_to);
                    let params: [&Param<'_>; 6] =
                        [room, &user.id, &user.name, &key, &read_to, &joined_ts];
                    client.execute(join, &params).await.map(|_| None)
                }
                PersonChange::Left { user, room } => {
                    let params: [&Param<'_>; 2] = [room, user];
                    client.execute(leave, &params).await.map(|_| None)
                }
                PersonChange::Read { user, room, seq } => {
                    let params: [&Param<'_>; 3] = [room, user, &to_sql_seq(*seq)];
                    let row = client.query_one(read, &params).await?;
                    Ok(Some((at, row)))
                }
            }
        }
    });
    // Each statement goes out when first polled, and `join_all` polls
    // them first in order (as `tokio::join!` does), so PostgreSQL runs
    // them in this order, between `BEGIN` and `COMMIT`, all sent in one
    // write.
    let (began, ran, committed) = tokio::join!(
        client.batch_execute("BEGIN"),
        futures_util::future::join_all(statements),
        client.batch_execute("COMMIT"),
    );
    began.map_err(db_error)?;
    let mut states: Vec<(usize, ReadState)> = Vec::new();
    for outcome in ran {
        if let Some((at, row)) = outcome.map_err(db_error)? {
            states.push((at, read_state_from_row(&row)?));
        }
    }
    committed.map_err(db_error)?;
    states.sort_by_key(|&(at, _)| at);
    Ok(states.into_iter().map(|(_, state)| state).collect())
}

/// The `(user, room)` pair a change is about.
fn pair(change: &PersonChange) -> (&str, &str) {
    match change {
        PersonChange::Joined { user, room, .. } => (&user.id, room),
        PersonChange::Left { user, room } | PersonChange::Read { user, room, .. } => (user, room),
    }
}

/// The rooms `user` is a member of, the most recently active first: one
/// snapshot, one round trip (two when some are direct-message rooms,
/// whose other person's name is looked up).
pub(super) async fn user_rooms(
    client: &Object,
    user: &str,
) -> Result<Vec<RoomSummary>, StoreError> {
    let [rooms_statement, people_statement] = prepare(client, [USER_ROOMS, PEOPLE]).await?;
    let user_param: [&Param<'_>; 1] = [&user];
    let (began, rows) = tokio::join!(
        client.batch_execute(BEGIN_SNAPSHOT),
        client.query(&rooms_statement, &user_param),
    );
    began.map_err(db_error)?;
    let rows = rows.map_err(db_error)?;
    let mut rooms = Vec::with_capacity(rows.len());
    let mut peers: Vec<String> = Vec::new();
    for row in &rows {
        let room: String = get(row, 20)?;
        let last = match get::<Option<i64>>(row, 0)? {
            Some(_) => Some(message_from_row(&room, row)?),
            None => None,
        };
        let with = dm_peer(&room, user).map(|peer| {
            peers.push(peer.clone());
            User {
                name: peer.clone(),
                id: peer,
            }
        });
        rooms.push(RoomSummary {
            room,
            seq: from_sql_seq(get(row, 22)?)?,
            last_read: from_sql_seq(get(row, 21)?)?,
            unread: count(row, 23)?,
            unread_mentions: count(row, 24)?,
            last,
            with,
        });
    }
    let names: HashMap<String, String> = if peers.is_empty() {
        client.batch_execute("COMMIT").await.map_err(db_error)?;
        HashMap::new()
    } else {
        let peers_param: [&Param<'_>; 1] = [&peers];
        let (found, committed) = tokio::join!(
            client.query(&people_statement, &peers_param),
            client.batch_execute("COMMIT"),
        );
        let found = found.map_err(db_error)?;
        committed.map_err(db_error)?;
        found
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect::<Result<_, StoreError>>()?
    };
    // A peer who never joined a room keeps their id for a name.
    for with in rooms.iter_mut().filter_map(|r| r.with.as_mut()) {
        if let Some(name) = names.get(&with.id) {
            with.name = name.clone();
        }
    }
    sort_by_activity(&mut rooms);
    Ok(rooms)
}

/// Rooms that are not direct-message rooms, the most recently active
/// first, at most `limit`.
pub(super) async fn directory(
    client: &Object,
    limit: usize,
) -> Result<Vec<DirectoryEntry>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let params: [&Param<'_>; 2] = [&limit, &DM_PREFIX];
    let rows = query(client, DIRECTORY, &params).await?;
    rows.iter()
        .map(|row| {
            Ok(DirectoryEntry {
                room: get(row, 0)?,
                seq: from_sql_seq(get(row, 1)?)?,
                members: count(row, 2)?,
                last_ts: get(row, 3)?,
            })
        })
        .collect()
}

/// The user as last seen joining a room.
pub(super) async fn person(client: &Object, user: &str) -> Result<Option<User>, StoreError> {
    let Some(row) = query_opt(client, PERSON, &[&user]).await? else {
        return Ok(None);
    };
    Ok(Some(User {
        id: user.to_owned(),
        name: get(&row, 0)?,
    }))
}

/// The value kept under `name`, `fresh` if none was. Two statements, each
/// its own transaction, sent together: the insert commits before the
/// select reads, and when another node's insert of the same name is under
/// way, it waits for that one to commit, then leaves it in place, and the
/// select (a new snapshot) reads it. So every node reads the first value.
pub(super) async fn shared_secret(
    client: &Object,
    name: &str,
    fresh: &str,
) -> Result<String, StoreError> {
    let [keep, secret] = prepare(client, [KEEP_SECRET, SECRET]).await?;
    let keep_params: [&Param<'_>; 2] = [&name, &fresh];
    let name_param: [&Param<'_>; 1] = [&name];
    let (kept, found) = tokio::join!(
        client.execute(&keep, &keep_params),
        client.query_one(&secret, &name_param),
    );
    kept.map_err(db_error)?;
    get(&found.map_err(db_error)?, 0)
}

/// The mention words to look up members for, from the texts of sends
/// (with their rooms): [`CANDIDATES`]' parameters, each `(room, word)`
/// once. Texts without an `@` add nothing, so a batch without one looks
/// nothing up.
#[derive(Default)]
pub(super) struct MentionLookup {
    rooms: Vec<String>,
    words: Vec<String>,
    bounds: Vec<String>,
}

impl MentionLookup {
    pub(super) fn of<'a>(sends: impl IntoIterator<Item = (&'a str, &'a str)>) -> MentionLookup {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (room, text) in sends.into_iter().filter(|(_, text)| text.contains('@')) {
            pairs.extend(mention_words(text).into_iter().map(|word| (room, word)));
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut lookup = MentionLookup::default();
        for (room, word) in pairs {
            lookup.rooms.push(room.to_owned());
            lookup.bounds.push(upper_bound_of_prefix(&word));
            lookup.words.push(word);
        }
        lookup
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    pub(super) fn params(&self) -> [&Param<'_>; 3] {
        [&self.rooms, &self.words, &self.bounds]
    }
}

/// The members [`CANDIDATES`] found, by room and mention word.
#[derive(Default)]
pub(super) struct Candidates(HashMap<(String, String), Vec<User>>);

impl Candidates {
    pub(super) fn from_rows(rows: &[Row]) -> Result<Candidates, StoreError> {
        let mut found: HashMap<(String, String), Vec<User>> = HashMap::new();
        for row in rows {
            found
                .entry((get(row, 0)?, get(row, 1)?))
                .or_default()
                .push(User {
                    id: get(row, 2)?,
                    name: get(row, 3)?,
                });
        }
        Ok(Candidates(found))
    }

    /// The members of `room` that `text` mentions, but its `sender`; each
    /// id once, sorted: of those whose names start with a word after an
    /// `@`, the ones [`mentioned`] whole, as SQLite resolves them.
    pub(super) fn mentioned_in(&self, room: &str, sender: &str, text: &str) -> Vec<String> {
        if !text.contains('@') {
            return Vec::new();
        }
        let mut ids = Vec::new();
        for word in mention_words(text) {
            let Some(members) = self.0.get(&(room.to_owned(), word)) else {
                continue;
            };
            for member in members {
                if member.id != sender && mentioned(text, &member.name) {
                    ids.push(member.id.clone());
                }
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Looks up the members `lookup`'s words may mention (nothing, without a
/// round trip, when it has none).
pub(super) async fn candidates(
    client: &Object,
    lookup: &MentionLookup,
) -> Result<Candidates, StoreError> {
    if lookup.is_empty() {
        return Ok(Candidates::default());
    }
    Candidates::from_rows(&query(client, CANDIDATES, &lookup.params()).await?)
}

/// The rows of `mentions` for new messages, as [`INSERT_MENTIONS`] takes
/// them, and each message's `mentions` column.
#[derive(Default)]
pub(super) struct NewMentions {
    users: Vec<String>,
    rooms: Vec<String>,
    seqs: Vec<i64>,
}

impl NewMentions {
    /// Adds the mentions of message `seq` of `room`; returns its
    /// `mentions` column.
    pub(super) fn add(&mut self, room: &str, seq: u64, ids: &[String]) -> Option<String> {
        for id in ids {
            self.users.push(id.clone());
            self.rooms.push(room.to_owned());
            self.seqs.push(to_sql_seq(seq));
        }
        mentions_column(ids)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub(super) fn params(&self) -> [&Param<'_>; 3] {
        [&self.users, &self.rooms, &self.seqs]
    }
}
