//! The public handle: [`Client`], built with [`ClientBuilder`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_protocol::{DirectoryEntry, ReadBody, RoomSummary};
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
    guest_token: Option<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    backoff: Backoff,
    reconnect: bool,
    dead_after: Option<Duration>,
    /// PEM bundles of extra roots to trust for `wss://`.
    root_certificates: Vec<Vec<u8>>,
    local_address: Option<IpAddr>,
}

impl ClientBuilder {
    /// Options for the server at `url`, e.g. `ws://127.0.0.1:3000/ws`.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            name: None,
            token: None,
            guest_token: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            reconnect: true,
            dead_after: None,
            root_certificates: Vec::new(),
            local_address: None,
        }
    }

    /// Opens every connection (the first and each reconnect) from this
    /// local address, e.g. one of 127.0.0.0/8 so that a balancer hashing
    /// client addresses (nginx `ip_hash`) spreads test clients on one
    /// machine over its servers.
    pub fn local_address(mut self, address: IpAddr) -> ClientBuilder {
        self.local_address = Some(address);
        self
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

    /// The guest credential of an earlier run
    /// ([`Session::guest_token`]), sent as `?guest=` so that this client is
    /// that same user (same `user.id`) on a server that issues them. Without
    /// one, a server that does hands one out in the first `welcome`; either
    /// way the client then reconnects with the latest it was handed.
    /// Ignored with a [`token`](ClientBuilder::token), which says who we
    /// are by itself.
    ///
    /// A credential the server no longer accepts fails
    /// [`connect`](ClientBuilder::connect) with [`Error::Rejected`]; drop
    /// it to start as a new guest. One refused at a reconnect is dropped
    /// by the client, which goes on as a new guest (a new `user.id` in
    /// [`Event::Reconnected`](crate::Event::Reconnected)) rather than
    /// stopping.
    pub fn guest_token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.guest_token = Some(token.into());
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

    /// Also trusts the certificate authorities in `pem` (one or more
    /// `BEGIN CERTIFICATE` sections) for a `wss://` URL, besides the
    /// platform's root store: a server with a private CA's certificate, or
    /// a self-signed one, is trusted by naming that CA (or that
    /// certificate), never by turning verification off, which this client
    /// has no way to do. May be called several times; each adds.
    ///
    /// The PEM is read by [`connect`](ClientBuilder::connect), which fails
    /// with [`Error::InvalidRootCertificates`] when it is not PEM or holds
    /// no usable certificate (for a `ws://` URL too, so a mistake shows at
    /// once).
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.root_certificates.push(pem.into());
        self
    }

    /// Opens the first connection and starts the client.
    ///
    /// The first connection is not retried: an unreachable server, a bad
    /// URL, a refused token or an untrusted certificate
    /// ([`Error::Tls`]) fail here, so a mistake shows at once. Connections
    /// lost later are re-opened in the background, over TLS again for a
    /// `wss://` URL, with the same trust.
    ///
    /// Must be called within a tokio runtime (the connection runs as a task
    /// on it).
    pub async fn connect(self) -> Result<(Client, Events)> {
        let mut target = Target::new(
            &self.url,
            self.name.as_deref(),
            self.token.as_deref(),
            self.guest_token.as_deref(),
        )?;
        target.trust(&self.root_certificates)?;
        target.local_address = self.local_address;
        let (ws, session) = target.open(self.connect_timeout).await?;
        target.keep_guest(&session);
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

    /// The guest credential this client reconnects with: the latest the
    /// server handed out ([`Session::guest_token`]). Save it to be the same
    /// guest in a later run ([`ClientBuilder::guest_token`]); it is a
    /// secret. `None` with a token, or from a server that issues none.
    pub fn guest_token(&self) -> Option<String> {
        self.inner.session.borrow().guest_token.clone()
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

    /// Moves our read marker in `room` forward to `seq` (an extension of our
    /// server): everything up to `seq` counts as read, on every device. A
    /// marker never moves back, so the reply's `seq` may be above the one
    /// asked for; its `unread` and `unread_mentions` are the counts after
    /// the move. Our other connections hear of it as an
    /// [`Event::Read`](crate::Event::Read). The room need not be joined by
    /// this client, but the user must be a member of it.
    pub async fn read(&self, room: &str, seq: u64) -> Result<ReadBody> {
        self.call(|reply| Command::Read {
            room: room.to_owned(),
            seq,
            reply,
        })
        .await
    }

    /// The rooms we are in (joined once and not left, on any device), the
    /// most recently active first, each with our unread counts, its latest
    /// message and, for a direct-message room, the other person (an
    /// extension of our server).
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>> {
        self.call(|reply| Command::Rooms { reply }).await
    }

    /// Public rooms (no direct-message rooms) we may join, the most
    /// recently active first (an extension of our server).
    pub async fn directory(&self) -> Result<Vec<DirectoryEntry>> {
        self.call(|reply| Command::Directory { reply }).await
    }

    /// Opens the direct-message room with the user whose id is `user` (an
    /// extension of our server) and joins it: the reply is the room's
    /// [`Joined`], whose `room` names it (`dm:…`, see
    /// [`dm_room`](crate::dm_room)). From then on it is a joined room
    /// like any other: its messages and changes arrive as events, in order,
    /// exactly once, across reconnects; send to it, leave it, as to any
    /// room. Opening it again is harmless, like joining again. The other
    /// person hears of it as an [`Event::RoomAdded`](crate::Event::RoomAdded).
    ///
    /// `not_found` when the server knows no such user (they must have
    /// joined a room once).
    pub async fn dm(&self, user: &str) -> Result<Joined> {
        self.call(|reply| Command::Dm {
            user: user.to_owned(),
            reply,
        })
        .await
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

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::StatusCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;
    use crate::event::Event;

    const WAIT: Duration = Duration::from_secs(10);

    /// What the test server does with one connection.
    #[derive(Clone, Copy)]
    enum Step {
        /// Welcomes it, with this guest credential, then goes away (1001)
        /// unless it is the last step, which is kept open.
        Welcome(Option<&'static str>),
        /// Refuses the upgrade with HTTP 401.
        Refuse,
    }

    /// A server that takes its connections through `steps`, one each, and
    /// reports each upgrade's URI.
    async fn server(steps: Vec<Step>) -> (String, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
        let (uris_tx, uris) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for (n, step) in steps.iter().enumerate() {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let uris_tx = uris_tx.clone();
                let refuse = matches!(step, Step::Refuse);
                // tungstenite's callback type, large error and all.
                #[allow(clippy::result_large_err)]
                let record = move |request: &Request, response: Response| {
                    let _ = uris_tx.send(request.uri().to_string());
                    if refuse {
                        let mut no = ErrorResponse::new(Some("bad guest".into()));
                        *no.status_mut() = StatusCode::UNAUTHORIZED;
                        return Err(no);
                    }
                    Ok(response)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                    continue;
                };
                let Step::Welcome(guest) = step else {
                    continue;
                };
                let mut welcome = serde_json::json!({"type": "welcome", "session": format!("s_{n}"),
                    "user": {"id": "u_1", "name": "ann"}, "heartbeat_ms": 25000, "text": "hi"});
                if let Some(guest) = guest {
                    welcome["guest_token"] = (*guest).into();
                }
                if ws.send(WsMessage::text(welcome.to_string())).await.is_err() {
                    return;
                }
                if n + 1 < steps.len() {
                    let away = CloseFrame {
                        code: CloseCode::Away,
                        reason: "".into(),
                    };
                    let _ = ws.close(Some(away)).await;
                    while let Some(Ok(_)) = ws.next().await {}
                } else {
                    held.push(ws);
                }
            }
            // Keep the last connection open until the test ends.
            std::future::pending::<()>().await;
        });
        (url, uris)
    }

    fn quick() -> Backoff {
        Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            max_attempts: Some(20),
        }
    }

    async fn reconnects(events: &mut Events, count: usize) {
        let mut seen = 0;
        tokio::time::timeout(WAIT, async {
            while seen < count {
                match events.recv().await {
                    Some(Event::Reconnected(_)) => seen += 1,
                    Some(Event::Closed(reason)) => panic!("closed: {reason:?}"),
                    Some(_) => {}
                    None => panic!("the events ended"),
                }
            }
        })
        .await
        .expect("reconnected in time");
    }

    async fn uris(uris: &mut mpsc::UnboundedReceiver<String>, count: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < count {
            let uri = tokio::time::timeout(WAIT, uris.recv()).await;
            got.push(uri.expect("an upgrade in time").expect("a uri"));
        }
        got
    }

    #[tokio::test]
    async fn a_guest_reconnects_with_the_latest_credential() {
        let steps = vec![
            Step::Welcome(Some("g-1")),
            Step::Welcome(Some("g-2")),
            Step::Welcome(None),
        ];
        let (url, mut seen) = server(steps).await;
        let (client, mut events) = ClientBuilder::new(&url)
            .name("ann")
            .backoff(quick())
            .connect()
            .await
            .expect("connect");
        reconnects(&mut events, 2).await;
        assert_eq!(
            uris(&mut seen, 3).await,
            [
                "/ws?name=ann",
                "/ws?name=ann&guest=g-1",
                "/ws?name=ann&guest=g-2"
            ]
        );
        // The last welcome had no credential: the one that worked stays.
        assert_eq!(client.guest_token().as_deref(), Some("g-2"));
        assert_eq!(client.session().guest_token.as_deref(), Some("g-2"));
    }

    #[tokio::test]
    async fn a_guest_token_given_is_presented_from_the_first_connection() {
        let (url, mut seen) = server(vec![Step::Welcome(None)]).await;
        let (client, _events) = ClientBuilder::new(&url)
            .guest_token("g-0")
            .connect()
            .await
            .expect("connect");
        assert_eq!(uris(&mut seen, 1).await, ["/ws?guest=g-0"]);
        assert_eq!(client.guest_token().as_deref(), Some("g-0"));
    }

    #[tokio::test]
    async fn a_token_user_presents_no_guest_credential() {
        let (url, mut seen) = server(vec![Step::Welcome(Some("g-1")), Step::Welcome(None)]).await;
        let (_client, mut events) = ClientBuilder::new(&url)
            .token("jwt")
            .guest_token("g-0")
            .backoff(quick())
            .connect()
            .await
            .expect("connect");
        reconnects(&mut events, 1).await;
        assert_eq!(uris(&mut seen, 2).await, ["/ws", "/ws"]);
    }

    #[tokio::test]
    async fn a_refused_guest_credential_is_dropped_at_a_reconnect() {
        let steps = vec![
            Step::Welcome(Some("g-1")),
            Step::Refuse,
            Step::Welcome(Some("g-3")),
        ];
        let (url, mut seen) = server(steps).await;
        let (client, mut events) = ClientBuilder::new(&url)
            .backoff(quick())
            .connect()
            .await
            .expect("connect");
        reconnects(&mut events, 1).await;
        assert_eq!(uris(&mut seen, 3).await, ["/ws", "/ws?guest=g-1", "/ws"]);
        assert_eq!(client.guest_token().as_deref(), Some("g-3"));
    }

    #[tokio::test]
    async fn a_refused_guest_credential_fails_the_first_connection() {
        let (url, _seen) = server(vec![Step::Refuse]).await;
        let refused = ClientBuilder::new(&url).guest_token("old").connect().await;
        assert!(
            matches!(refused, Err(Error::Rejected { status: 401, .. })),
            "{refused:?}"
        );
    }
}
