//! The public handle: [`Client`], built with [`ClientBuilder`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::action::Action;
use crate::backoff::Backoff;
use crate::connection::{Command, Connection, Reply, Settings};
use crate::error::{Error, Result};
use crate::event::{Ack, Events, History, Joined, SearchResults, Session};
use crate::history::HistoryQuery;
use crate::search::Search;
use crate::wire::Target;

/// Options for a [`Client`]; finish with [`ClientBuilder::connect`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    name: Option<String>,
    token: Option<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    backoff: Backoff,
    reconnect: bool,
    dead_after: Option<Duration>,
}

impl ClientBuilder {
    /// Options for the server at `url`, e.g. `ws://127.0.0.1:3000/ws`.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            name: None,
            token: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            reconnect: true,
            dead_after: None,
        }
    }

    /// The display name to ask for in anonymous mode (`?name=`). Without
    /// one the server picks a `guest-…` name.
    pub fn name(mut self, name: impl Into<String>) -> ClientBuilder {
        self.name = Some(name.into());
        self
    }

    /// A JWT for servers in token mode, sent as `Authorization: Bearer`
    /// (a header rather than `?token=`, so it stays out of URLs and logs).
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.token = Some(token.into());
        self
    }

    /// How long a request may wait for its reply, reconnects included
    /// [default: 30 s]. For [`Client::send`] and the other writes this
    /// bounds all their retries.
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.request_timeout = timeout;
        self
    }

    /// How long opening one connection (upgrade and welcome) may take
    /// [default: 10 s].
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Delays between reconnect attempts, and between retries of a write
    /// (a send, an edit, …) the server was too busy for.
    pub fn backoff(mut self, backoff: Backoff) -> ClientBuilder {
        self.backoff = backoff;
        self
    }

    /// Whether to reconnect after losing the connection [default: true].
    /// Without it, a lost connection ends the client
    /// ([`CloseReason::Disconnected`](crate::CloseReason::Disconnected)).
    pub fn reconnect(mut self, reconnect: bool) -> ClientBuilder {
        self.reconnect = reconnect;
        self
    }

    /// Declare the server dead (and reconnect) after this long without any
    /// frame from it [default: twice the `heartbeat_ms` of its welcome; the
    /// server pings at that interval, so a live server is never this
    /// quiet].
    pub fn dead_server_after(mut self, silence: Duration) -> ClientBuilder {
        self.dead_after = Some(silence);
        self
    }

    /// Opens the first connection and starts the client.
    ///
    /// The first connection is not retried: an unreachable server, a bad
    /// URL or a refused token fail here, so a mistake shows at once.
    /// Connections lost later are re-opened in the background.
    ///
    /// Must be called within a tokio runtime (the connection runs as a task
    /// on it).
    pub async fn connect(self) -> Result<(Client, Events)> {
        let target = Target::new(&self.url, self.name.as_deref(), self.token.as_deref())?;
        let (ws, session) = target.open(self.connect_timeout).await?;
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (session_tx, session_rx) = watch::channel(session);
        let settings = Settings {
            target,
            connect_timeout: self.connect_timeout,
            backoff: self.backoff.clone(),
            reconnect: self.reconnect,
            dead_after: self.dead_after,
        };
        let connection = Connection::new(settings, commands_rx, events_tx, session_tx);
        tokio::spawn(connection.run(ws));
        let client = Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                session: session_rx,
                request_timeout: self.request_timeout,
                backoff: self.backoff,
                id_prefix: format!("c-{:016x}", rand::random::<u64>()),
                next_id: AtomicU64::new(1),
            }),
        };
        Ok((client, Events { rx: events_rx }))
    }
}

/// A connection to a chat server that survives disconnects.
///
/// Cheap to clone: clones share one connection. Each request method waits
/// for the server's reply (up to the request timeout) and maps an `error`
/// frame to [`Error::Server`]. While the connection is down, requests wait
/// for the next one. When every clone is dropped, the connection closes.
///
/// ```no_run
/// # async fn demo() -> chat_client::Result<()> {
/// use chat_client::{ClientBuilder, Event};
///
/// let (client, mut events) = ClientBuilder::new("ws://127.0.0.1:3000/ws")
///     .name("alice")
///     .connect()
///     .await?;
/// client.join("general").await?;
/// let ack = client.send("general", "hello").await?;
/// println!("stored as #{}", ack.seq);
/// while let Some(event) = events.recv().await {
///     if let Event::Message(m) = event {
///         println!("{} {}: {}", m.seq, m.from.name, m.text);
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    session: watch::Receiver<Session>,
    request_timeout: Duration,
    backoff: Backoff,
    /// Random per client, so ids of different clients never collide.
    id_prefix: String,
    next_id: AtomicU64,
}

impl Client {
    /// Connects with default options; see [`ClientBuilder`] for the others.
    pub async fn connect(url: impl Into<String>) -> Result<(Client, Events)> {
        ClientBuilder::new(url).connect().await
    }

    /// The current connection's session (it changes on reconnect).
    pub fn session(&self) -> Session {
        self.inner.session.borrow().clone()
    }

    /// Joins `room`. The event stream then carries the room's messages and
    /// changes after [`Joined::seq`], and keeps carrying them across
    /// reconnects (re-joining with `since` automatically).
    /// [`Joined::recent`] holds the latest messages for context, and
    /// [`Joined::pins`] the pinned ones.
    ///
    /// Joining a room already joined is harmless: the event stream goes on
    /// where it was.
    pub async fn join(&self, room: &str) -> Result<Joined> {
        self.join_from(room, None).await
    }

    /// Joins `room` and delivers, as events, every message and change after
    /// `since` (paging through history when there are more than the server
    /// returns at once), then the live ones. For a room already joined,
    /// `since` is ignored and the stream goes on where it was, so nothing
    /// is repeated.
    pub async fn join_since(&self, room: &str, since: u64) -> Result<Joined> {
        self.join_from(room, Some(since)).await
    }

    async fn join_from(&self, room: &str, since: Option<u64>) -> Result<Joined> {
        self.call(|reply| Command::Join {
            room: room.to_owned(),
            since,
            reply,
        })
        .await
    }

    /// Leaves `room`; its events stop.
    pub async fn leave(&self, room: &str) -> Result<()> {
        self.call(|reply| Command::Leave {
            room: room.to_owned(),
            reply,
        })
        .await
    }

    /// Sends `text` to `room` (which must be joined) and returns the ack,
    /// which means the message is durably stored.
    ///
    /// The message gets a fresh unique `id`, and every retry uses it, so the
    /// message is stored at most once: sends cut off by a disconnect are
    /// sent again after reconnecting; `rate_limited`, `overloaded` and
    /// `internal` refusals are retried after a backoff. All of that is
    /// bounded by the request timeout.
    pub async fn send(&self, room: &str, text: &str) -> Result<Ack> {
        self.write(room, send(text, None)).await
    }

    /// Like [`Client::send`] with a caller-chosen `id` (1–64 characters).
    /// Sending again with an `id` already stored in the room stores nothing
    /// and returns the original ack with [`Ack::duplicate`] set: use this
    /// to retry safely across restarts of your own program.
    pub async fn send_with_id(&self, room: &str, text: &str, id: &str) -> Result<Ack> {
        self.write_with_id(room, send(text, None), id).await
    }

    /// Sends `text` to `room` as a reply to message `to`: the message
    /// carries `reply_to` and a quote of the start of message `to`, kept
    /// current as that message is edited or deleted. `not_found` when the
    /// room holds no message `to`. Retried like [`Client::send`].
    pub async fn reply(&self, room: &str, to: u64, text: &str) -> Result<Ack> {
        self.write(room, send(text, Some(to))).await
    }

    /// Replaces the text of message `seq` in `room`: the author's own
    /// message, or any for a moderator (`forbidden` otherwise; `not_found`
    /// when there is no such message, or it was deleted). The ack's `seq`
    /// is the edit's own. Retried like [`Client::send`].
    ///
    /// In anonymous mode each connection is a new user, so a message sent
    /// before a reconnect is no longer "yours" after it.
    pub async fn edit(&self, room: &str, seq: u64, text: &str) -> Result<Ack> {
        let text = text.to_owned();
        self.write(room, Action::Edit { seq, text }).await
    }

    /// Deletes message `seq` in `room` (same permissions as
    /// [`Client::edit`]); it stays in history as a tombstone. The ack's
    /// `seq` is the deletion's own.
    pub async fn delete(&self, room: &str, seq: u64) -> Result<Ack> {
        self.write(room, Action::Delete { seq }).await
    }

    /// Adds `emoji` to message `seq` in `room`. Reacting again with an
    /// emoji we already put there stores nothing: the ack is that of the
    /// earlier reaction, with [`Ack::duplicate`] set.
    pub async fn react(&self, room: &str, seq: u64, emoji: &str) -> Result<Ack> {
        self.write(room, react(seq, emoji, false)).await
    }

    /// Takes back our `emoji` on message `seq` in `room` (`not_found` when
    /// we have not reacted with it).
    pub async fn unreact(&self, room: &str, seq: u64, emoji: &str) -> Result<Ack> {
        self.write(room, react(seq, emoji, true)).await
    }

    /// Pins message `seq` in `room`. Only moderators may (`forbidden`
    /// otherwise); pinning a message already pinned is acked as a
    /// duplicate.
    pub async fn pin(&self, room: &str, seq: u64) -> Result<Ack> {
        self.write(room, Action::Pin { seq, remove: false }).await
    }

    /// Unpins message `seq` in `room` (moderators only).
    pub async fn unpin(&self, room: &str, seq: u64) -> Result<Ack> {
        self.write(room, Action::Pin { seq, remove: true }).await
    }

    /// Adds a message or a change to `room` (which must be joined) under a
    /// fresh unique `id`, and returns the ack: the entry is durably stored,
    /// once, whatever the retries. The methods above are shorthands for
    /// this one.
    pub async fn write(&self, room: &str, action: Action) -> Result<Ack> {
        let id = format!(
            "{}-{}",
            self.inner.id_prefix,
            self.inner.next_id.fetch_add(1, Ordering::Relaxed)
        );
        self.write_with_id(room, action, &id).await
    }

    /// Like [`Client::write`] with a caller-chosen `id` (1–64 characters):
    /// writing again with an `id` already stored in the room stores nothing
    /// and returns the original ack with [`Ack::duplicate`] set.
    ///
    /// Requests cut off by a disconnect are sent again, with the same `id`,
    /// after reconnecting; `rate_limited`, `overloaded` and `internal`
    /// refusals are retried after a backoff. All of that is bounded by the
    /// request timeout.
    pub async fn write_with_id(&self, room: &str, action: Action, id: &str) -> Result<Ack> {
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            let (reply, answer) = oneshot::channel();
            self.command(Command::Write {
                room: room.to_owned(),
                id: id.to_owned(),
                action: action.clone(),
                reply,
            })?;
            let error = match tokio::time::timeout_at(deadline, answer).await {
                Err(_) => return Err(Error::Timeout(timeout)),
                Ok(Err(_)) => return Err(Error::Closed),
                Ok(Ok(Ok(ack))) => return Ok(ack),
                Ok(Ok(Err(error))) => error,
            };
            if !(error.code().is_some() && error.is_retryable()) {
                return Err(error);
            }
            attempt += 1;
            let delay = self.inner.backoff.delay(attempt);
            if Instant::now() + delay >= deadline {
                return Err(error);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One page of `room`'s history: messages in their current state and,
    /// for a page [`after`](HistoryQuery::after) a `seq`, the changes in
    /// its range ([`History::events`]). The room need not be joined.
    pub async fn history(&self, room: &str, query: HistoryQuery) -> Result<History> {
        self.call(|reply| Command::History {
            room: room.to_owned(),
            query,
            reply,
        })
        .await
    }

    /// One page of the messages holding every word of a query, newest
    /// first, each in its current state (an extension of our server,
    /// `docs/protocol.md`). Pass the query as a `&str` to search every room
    /// the user may read, or a [`Search`] to name a room, a page size or
    /// the page to fetch. No `join` is needed.
    ///
    /// For the following page, search again with the page's
    /// [`SearchResults::next`] as the [`Search::cursor`]; `next` is `None`
    /// on the last page. Like [`Client::history`], a search cut off by a
    /// disconnect is sent again after reconnecting.
    ///
    /// Refusals come as [`Error::Server`]: `bad_request` for an empty query
    /// or more than 8 words, `too_long` past 200 characters,
    /// `invalid_room`, `forbidden` for a room the token's `rooms` claim
    /// leaves out, and `rate_limited` past the server's search rate (2 a
    /// second per connection, in bursts of 10, by default). They are not
    /// retried here; `rate_limited` is [retryable](Error::is_retryable)
    /// after a pause.
    ///
    /// ```no_run
    /// # async fn demo(client: chat_client::Client) -> chat_client::Result<()> {
    /// use chat_client::Search;
    ///
    /// let page = client.search("天气").await?;
    /// for m in &page.results {
    ///     println!("#{} {} {}: {}", m.room, m.seq, m.from.name, m.text);
    /// }
    /// // Every match in #ops, 50 at a time.
    /// let mut search = Search::new("deploy").room("ops").limit(50);
    /// loop {
    ///     let page = client.search(search.clone()).await?;
    ///     println!("{} more", page.results.len());
    ///     match page.next {
    ///         Some(next) => search = search.cursor(next),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn search(&self, search: impl Into<Search>) -> Result<SearchResults> {
        let search = search.into();
        self.call(|reply| Command::Search { search, reply }).await
    }

    /// Tells the room's other members we are typing. Fire and forget: it is
    /// not acknowledged, and dropped while disconnected.
    pub fn typing(&self, room: &str) -> Result<()> {
        self.command(Command::Typing {
            room: room.to_owned(),
        })
    }

    /// Measures a round trip to the server (`ping`/`pong`).
    pub async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        self.call(|reply| Command::Ping { reply }).await?;
        Ok(start.elapsed())
    }

    /// Closes the connection politely and stops reconnecting. Requests
    /// still waiting fail with [`Error::Closed`]; the event stream ends with
    /// [`Event::Closed`](crate::Event::Closed). Other clones of this client
    /// are closed too.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.command(Command::Close { done }).is_ok() {
            let _ = closed.await;
        }
    }

    fn command(&self, command: Command) -> Result<()> {
        self.inner.commands.send(command).map_err(|_| Error::Closed)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.command(make(reply))?;
        let timeout = self.inner.request_timeout;
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(Error::Timeout(timeout)),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(result)) => result,
        }
    }
}

fn send(text: &str, reply_to: Option<u64>) -> Action {
    Action::Send {
        text: text.to_owned(),
        reply_to,
    }
}

fn react(seq: u64, emoji: &str, remove: bool) -> Action {
    Action::React {
        seq,
        emoji: emoji.to_owned(),
        remove,
    }
}
