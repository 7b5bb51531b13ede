//! `chat`: a command-line client for `chat-server`, built on the
//! `chat-client` library.
//!
//! ```text
//! chat tail general                    # print messages as they arrive
//! chat tail general --since 120        # everything after seq 120, then live
//! chat send general "hello there"      # prints the ack; non-zero exit on failure
//! chat send general --reply-to 7 "yes" # a reply to message 7
//! chat edit general 7 "hello, fixed"   # also: delete, react, pin
//! chat history general --limit 20
//! chat search 天气 today               # every room you may read, newest first
//! chat search deploy --room ops --all  # every page, not just the first
//! chat general                         # interactive: type lines, see the room
//! echo hi | chat --json general        # works with piped stdin too
//! chat rooms                           # your rooms: unread, mentions, last message
//! chat directory                       # public rooms to join
//! chat dm bob "are you there?"         # a direct message to the user with id bob
//! chat dm bob                          # interactive, in the direct-message room
//! chat read general 42                 # everything up to seq 42 is read
//! chat --guest-token-file ~/.chat-guest send general hi   # the same guest each run
//! chat --url wss://chat.example/ws --ca-file ca.pem tail general   # TLS, a private CA
//! ```
//!
//! Human output is one line per message, `[HH:MM:SS] #room seq name: text`
//! (server time, UTC), showing the message as it now is: `(edited)`,
//! `(message deleted)`, its reactions, and for a reply the start of the
//! message it answers. The room's changes are applied to a [`RoomState`]
//! as they come: an edit, deletion or reaction prints its message's line
//! again, updated; a pin prints a note. With `--json` each line is one
//! frame as the server sent it (`{"type":"message",...}`,
//! `{"type":"edited",...}`), for scripts; `search` prints its results as
//! the server sent them (the message objects of `search_results`), and
//! `rooms` and `directory` the objects of their replies. Notes about the
//! connection (reconnecting, …) go to stderr, so stdout holds only the
//! room.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chat_client::{
    Ack, Action, Change, Client, ClientBuilder, CloseReason, DirectoryEntry, ErrorCode, Event,
    Events, History, HistoryQuery, Joined, Message, PresenceEvent, Quote, Reaction, ReadBody,
    RoomState, RoomSummary, Search, SearchResults,
};
use chat_protocol::{AckBody, PresenceBody, ServerFrame, TypingBody};
use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

/// Command-line client for chat-server: tail a room, send, edit, delete,
/// react, pin, read history, search, list your rooms and unread messages,
/// send direct messages, or chat interactively.
///
/// `chat ROOM` is short for `chat chat ROOM` (which a room named like a
/// command, `rooms` say, needs).
#[derive(Debug, Parser)]
#[command(name = "chat", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// WebSocket URL of the server.
    #[arg(
        long,
        global = true,
        env = "CHAT_URL",
        default_value = "ws://127.0.0.1:3000/ws"
    )]
    url: String,
    /// Display name to use (anonymous mode); the server picks one otherwise.
    #[arg(long, global = true, env = "CHAT_NAME")]
    name: Option<String>,
    /// JWT for servers in token mode (sent as an Authorization header).
    #[arg(long, global = true, env = "CHAT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File that keeps your guest identity between runs (anonymous mode):
    /// read at the start if it exists, and written (readable by you only)
    /// with the credential the server hands out, so every run given the
    /// same file is the same user. Keep one file per server. Without this
    /// option each run is a new guest; ignored with --token.
    #[arg(
        long,
        global = true,
        env = "CHAT_GUEST_TOKEN_FILE",
        value_name = "PATH"
    )]
    guest_token_file: Option<PathBuf>,
    /// PEM file of certificate authorities to trust for a wss:// URL, besides
    /// the system's: a private CA, or a self-signed server's own
    /// certificate. Certificates are always verified.
    #[arg(long, global = true, env = "CHAT_CA_FILE", value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Print one JSON object per line (frames as the server sent them).
    #[arg(long, global = true)]
    json: bool,
    /// Seconds a request may wait for its reply, reconnects included.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a room's messages as they arrive (follows until interrupted).
    Tail {
        room: String,
        /// Start with every message after this seq (0: from the beginning)
        /// instead of the last few.
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
        /// Without --since: how many recent messages to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
        /// Exit after printing this many lines of the room: messages and
        /// changes (edits, deletions, reactions, pins).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Send one message and print its ack (seq); exit non-zero on failure.
    Send {
        room: String,
        /// The message (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Reply to the message with this seq.
        #[arg(long, value_name = "SEQ")]
        reply_to: Option<u64>,
        /// Message id, for a retry that must not be stored twice.
        #[arg(long)]
        id: Option<String>,
    },
    /// Replace the text of a message (yours, or any for a moderator) and
    /// print the edit's ack.
    Edit {
        room: String,
        /// The message to edit.
        seq: u64,
        /// The new text (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Request id, for a retry that must not be stored twice.
        #[arg(long)]
        id: Option<String>,
    },
    /// Delete a message (yours, or any for a moderator); it stays in
    /// history as a tombstone.
    Delete {
        room: String,
        /// The message to delete.
        seq: u64,
        /// Request id, for a retry that must not be stored twice.
        #[arg(long)]
        id: Option<String>,
    },
    /// React to a message with an emoji, or take the reaction back.
    React {
        room: String,
        /// The message to react to.
        seq: u64,
        emoji: String,
        /// Take the reaction back instead.
        #[arg(long)]
        remove: bool,
        /// Request id, for a retry that must not be stored twice.
        #[arg(long)]
        id: Option<String>,
    },
    /// Pin a message, or unpin it (moderators only).
    Pin {
        room: String,
        /// The message to pin.
        seq: u64,
        /// Unpin it instead.
        #[arg(long)]
        remove: bool,
        /// Request id, for a retry that must not be stored twice.
        #[arg(long)]
        id: Option<String>,
    },
    /// Print a page of a room's history, oldest first.
    History {
        room: String,
        /// Messages in the page (the server allows at most 200).
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Only messages with a seq below this one.
        #[arg(long, value_name = "SEQ", conflicts_with = "after")]
        before: Option<u64>,
        /// Only messages with a seq above this one (oldest first).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// Search for messages holding every word of a query, newest first:
    /// in every room you may read, or in one. Prints one page unless --all.
    Search {
        /// The words to look for (several are joined with spaces). A message
        /// matches when its text holds every word, in any script (`天气`
        /// finds `今天天气很好`), ignoring case for ASCII letters; 1 to 8
        /// words, at most 200 characters.
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// Search this room only.
        #[arg(long)]
        room: Option<String>,
        /// Results per page (the server allows 1 to 50; its default is 20).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Start at this cursor, from the hint an earlier search printed.
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<u64>,
        /// Print every page, following the server's cursor to the last.
        #[arg(long)]
        all: bool,
    },
    /// Chat interactively: lines from stdin are sent, the room is printed.
    /// Ends at end of input (after our last message is echoed) or on /quit.
    Chat {
        room: String,
        /// How many recent messages to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
    },
    /// List your rooms, the most recently active first: unread messages,
    /// those that mention you, and the last message. Direct-message rooms
    /// show as @NAME.
    Rooms,
    /// List public rooms you may join, the most recently active first.
    Directory,
    /// Open the direct-message room with a user: send TEXT and print its
    /// ack, or without TEXT chat there interactively (as `chat ROOM` does).
    Dm {
        /// The other person's user id: a token's `sub`, or a guest's `u_…`
        /// (shown as `from.id` by --json).
        user: String,
        /// A message to send (several words are joined with spaces).
        text: Vec<String>,
        /// Without TEXT: how many recent messages to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
    },
    /// Mark a room read up to SEQ, on every device, and print what is left
    /// unread (a marker never moves back).
    Read {
        room: String,
        /// The last seq read.
        seq: u64,
    },
    /// `chat ROOM`: interactive chat in ROOM.
    #[command(external_subcommand)]
    Room(Vec<String>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for the stdin reader thread, which may be blocked in read.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text an
/// outer error already includes (common with wrapped I/O errors).
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(cli: Cli) -> Result<()> {
    let out = Output {
        json: cli.global.json,
    };
    if let Command::Room(words) = &cli.command
        && words.len() != 1
    {
        bail!("`chat ROOM` takes just the room name; see `chat --help`");
    }
    let mut guest = GuestFile::open(&cli.global)?;
    let (client, events) = connect(&cli.global, &guest).await?;
    // Saved before the command too, so a run that is interrupted (a tail
    // ends that way) still leaves the credential for the next.
    guest.save(&client)?;
    let result = match cli.command {
        Command::Tail {
            room,
            since,
            lines,
            count,
        } => tail(&client, events, &out, &room, since, lines, count).await,
        Command::Send {
            room,
            text,
            reply_to,
            id,
        } => {
            drop(events);
            let text = text.join(" ");
            write(&client, &out, &room, Action::Send { text, reply_to }, id).await
        }
        Command::Edit {
            room,
            seq,
            text,
            id,
        } => {
            drop(events);
            let text = text.join(" ");
            write(&client, &out, &room, Action::Edit { seq, text }, id).await
        }
        Command::Delete { room, seq, id } => {
            drop(events);
            write(&client, &out, &room, Action::Delete { seq }, id).await
        }
        Command::React {
            room,
            seq,
            emoji,
            remove,
            id,
        } => {
            drop(events);
            let react = Action::React { seq, emoji, remove };
            write(&client, &out, &room, react, id).await
        }
        Command::Pin {
            room,
            seq,
            remove,
            id,
        } => {
            drop(events);
            write(&client, &out, &room, Action::Pin { seq, remove }, id).await
        }
        Command::History {
            room,
            limit,
            before,
            after,
        } => {
            drop(events);
            let query = HistoryQuery {
                before,
                after,
                limit: Some(limit),
            };
            history(&client, &out, &room, query).await
        }
        Command::Search {
            query,
            room,
            limit,
            cursor,
            all,
        } => {
            drop(events);
            let request = Search {
                query: query.join(" "),
                room,
                cursor,
                limit,
            };
            let patience = Duration::from_secs(cli.global.timeout);
            search(&client, &out, request, all, patience).await
        }
        Command::Chat { room, lines } => chat_in(&client, events, &out, &room, lines).await,
        // Checked above: exactly one word, the room.
        Command::Room(words) => chat_in(&client, events, &out, &words.concat(), 10).await,
        Command::Rooms => {
            drop(events);
            rooms(&client, &out).await
        }
        Command::Directory => {
            drop(events);
            directory(&client, &out).await
        }
        Command::Dm { user, text, lines } => dm(&client, events, &out, &user, text, lines).await,
        Command::Read { room, seq } => {
            drop(events);
            read(&client, &out, &room, seq).await
        }
    };
    // A reconnect may have brought a newer credential: the latest wins.
    if let Err(error) = guest.save(&client) {
        eprintln!("chat: {}", describe(&error));
    }
    client.close().await;
    result
}

async fn connect(global: &Global, guest: &GuestFile) -> Result<(Client, Events)> {
    let mut builder =
        ClientBuilder::new(&global.url).request_timeout(Duration::from_secs(global.timeout));
    if let Some(path) = &global.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the --ca-file {}", path.display()))?;
        builder = builder.root_certificates_pem(pem);
    }
    if let Some(name) = &global.name {
        builder = builder.name(name);
    }
    if let Some(token) = &global.token {
        builder = builder.token(token);
    }
    if let Some(token) = guest.token() {
        builder = builder.guest_token(token);
    }
    builder
        .connect()
        .await
        .map_err(|error| connect_failure(error, global, guest))
}

/// Why `connect` failed, with what the user can do about it when the
/// error alone would leave them guessing.
fn connect_failure(error: chat_client::Error, global: &Global, guest: &GuestFile) -> anyhow::Error {
    use chat_client::Error;
    use chat_client::rustls::Error as TlsError;
    let hint = match &error {
        // Most likely the file's credential, which only removing it gets
        // past.
        Error::Rejected { .. } => guest.presented().map(|path| {
            format!(
                "the guest token in {} was refused (remove the file to connect as a new guest)",
                path.display()
            )
        }),
        Error::Tls {
            source: TlsError::InvalidCertificate(_),
            ..
        } => Some(
            "the server's certificate is not trusted (a private CA, or a self-signed \
             certificate? name it with --ca-file PATH)"
                .to_owned(),
        ),
        Error::InvalidRootCertificates { .. } => global
            .ca_file
            .as_ref()
            .map(|path| format!("cannot use the --ca-file {}", path.display())),
        _ => None,
    };
    // Bad certificates to trust stop the run before any attempt.
    let attempted = !matches!(error, Error::InvalidRootCertificates { .. });
    let mut error = anyhow::Error::new(error);
    if attempted {
        error = error.context(format!("cannot connect to {}", global.url));
    }
    match hint {
        Some(hint) => error.context(hint),
        None => error,
    }
}

/// `--guest-token-file`: where a guest's credential is kept between runs.
struct GuestFile {
    /// `None` without the option, or with a token (a token user is no
    /// guest).
    path: Option<PathBuf>,
    /// The credential read from the file, then the last one written.
    saved: Option<String>,
}

impl GuestFile {
    fn open(global: &Global) -> Result<GuestFile> {
        let path = match (&global.guest_token_file, &global.token) {
            (Some(path), None) => Some(path.clone()),
            _ => None,
        };
        let saved = match &path {
            Some(path) => read_guest_token(path)?,
            None => None,
        };
        Ok(GuestFile { path, saved })
    }

    fn token(&self) -> Option<&str> {
        self.saved.as_deref()
    }

    /// The file, when a credential from it is being presented.
    fn presented(&self) -> Option<&Path> {
        self.saved.as_ref().and(self.path.as_deref())
    }

    /// Writes the client's current credential, unless the file has it.
    fn save(&mut self, client: &Client) -> Result<()> {
        let (Some(path), Some(token)) = (&self.path, client.guest_token()) else {
            return Ok(());
        };
        if self.saved.as_deref() == Some(token.as_str()) {
            return Ok(());
        }
        write_guest_token(path, &token)
            .with_context(|| format!("cannot write the guest token file {}", path.display()))?;
        self.saved = Some(token);
        Ok(())
    }
}

/// The credential in `path`; `None` when there is no such file yet.
fn read_guest_token(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error)
            .with_context(|| format!("cannot read the guest token file {}", path.display())),
    }
}

/// Writes `token` to `path` through a temporary file renamed into place, so
/// that a run starting meanwhile reads the old credential or the new one,
/// never half of one; only its owner may read it, as it lets anyone be
/// this user.
fn write_guest_token(path: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&temporary)
        .and_then(|mut file| writeln!(file, "{token}").and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

async fn tail(
    client: &Client,
    mut events: Events,
    out: &Output,
    room: &str,
    since: Option<u64>,
    lines: usize,
    count: Option<u64>,
) -> Result<()> {
    let mut printed = 0u64;
    let done = |printed: u64| count.is_some_and(|n| printed >= n);
    let joined = match since {
        Some(since) => client.join_since(room, since).await,
        None => client.join(room).await,
    }
    .with_context(|| format!("cannot join {room:?}"))?;
    let mut state = joined.room_state();
    let skip = joined.recent.len().saturating_sub(lines);
    for message in &joined.recent[skip..] {
        if done(printed) {
            return Ok(());
        }
        out.message(message);
        printed += 1;
    }
    while !done(printed) {
        let Some(event) = events.recv().await else {
            break;
        };
        if event.room() == Some(room) && out.entry(&event, &mut state) {
            printed += 1;
        } else {
            out.connection_note(&event)?;
        }
    }
    Ok(())
}

/// Joins `room` (writing needs it), writes, and prints the ack.
async fn write(
    client: &Client,
    out: &Output,
    room: &str,
    action: Action,
    id: Option<String>,
) -> Result<()> {
    client
        .join(room)
        .await
        .with_context(|| format!("cannot join {room:?}"))?;
    let ack = match &id {
        Some(id) => client.write_with_id(room, action.clone(), id).await,
        None => client.write(room, action.clone()).await,
    }
    .with_context(|| format!("cannot {}", describe_action(room, &action)))?;
    out.ack(&ack, &action);
    Ok(())
}

/// What an action was to do, for its error: `send to #general`,
/// `edit #general 7`, ….
fn describe_action(room: &str, action: &Action) -> String {
    match action {
        Action::Send { reply_to: None, .. } => format!("send to #{room}"),
        Action::Send {
            reply_to: Some(to), ..
        } => format!("reply to #{room} {to}"),
        Action::Edit { seq, .. } => format!("edit #{room} {seq}"),
        Action::Delete { seq } => format!("delete #{room} {seq}"),
        Action::React {
            seq,
            emoji,
            remove: false,
        } => format!("react {emoji} to #{room} {seq}"),
        Action::React { seq, emoji, .. } => format!("take back {emoji} from #{room} {seq}"),
        Action::Pin { seq, remove: false } => format!("pin #{room} {seq}"),
        Action::Pin { seq, .. } => format!("unpin #{room} {seq}"),
        // `Action` may grow; a new kind still gets a sensible line.
        other => format!("write {other:?} to #{room}"),
    }
}

async fn history(client: &Client, out: &Output, room: &str, query: HistoryQuery) -> Result<()> {
    let page = client
        .history(room, query)
        .await
        .with_context(|| format!("cannot read the history of {room:?}"))?;
    out.page(&page);
    if page.more && !out.json {
        let last = page
            .messages
            .iter()
            .map(|m| m.seq)
            .chain(page.events.iter().map(Change::seq))
            .max();
        let hint = match (query.after, last, page.messages.first()) {
            (Some(_), Some(last), _) => format!("--after {last}"),
            (None, _, Some(first)) => format!("--before {}", first.seq),
            _ => String::new(),
        };
        eprintln!("chat: more messages exist ({hint})");
    }
    Ok(())
}

/// Prints the results of `request`: one page, or with `all` every page
/// from there to the last. Without `all`, a note on stderr tells where the
/// next page starts.
async fn search(
    client: &Client,
    out: &Output,
    mut request: Search,
    all: bool,
    patience: Duration,
) -> Result<()> {
    let what = match &request.room {
        Some(room) => format!("{:?} in #{room}", request.query),
        None => format!("{:?}", request.query),
    };
    let mut found = 0usize;
    loop {
        let page = search_page(client, &request, patience)
            .await
            .with_context(|| format!("cannot search for {what}"))?;
        found += page.results.len();
        for message in &page.results {
            out.result(message);
        }
        match page.next {
            Some(next) if all => request = request.cursor(next),
            Some(next) => {
                eprintln!("chat: more results exist (--cursor {next}, or --all for every page)");
                break;
            }
            None => break,
        }
    }
    if found == 0 && !out.json {
        eprintln!("chat: no message matches {what}");
    }
    Ok(())
}

/// One page of a search. A refusal for the search rate (the server allows
/// 2 searches a second per connection by default, in bursts of 10, which
/// `--all` can outrun) is asked again after a pause, for up to `patience`.
async fn search_page(
    client: &Client,
    request: &Search,
    patience: Duration,
) -> chat_client::Result<SearchResults> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(250);
    loop {
        match client.search(request.clone()).await {
            Err(error)
                if error.code() == Some(ErrorCode::RateLimited)
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            answer => return answer,
        }
    }
}

/// `chat rooms`: one line per room of the user's.
async fn rooms(client: &Client, out: &Output) -> Result<()> {
    let rooms = client.rooms().await.context("cannot list your rooms")?;
    let me = client.session().user.id;
    for summary in &rooms {
        out.room_summary(summary, &me);
    }
    if rooms.is_empty() && !out.json {
        eprintln!("chat: you are in no room yet");
    }
    Ok(())
}

/// `chat directory`: one line per public room.
async fn directory(client: &Client, out: &Output) -> Result<()> {
    let rooms = client
        .directory()
        .await
        .context("cannot list the directory")?;
    for entry in &rooms {
        out.directory_entry(entry);
    }
    if rooms.is_empty() && !out.json {
        eprintln!("chat: no public room yet");
    }
    Ok(())
}

/// `chat dm USER [TEXT]`: opens the direct-message room, then sends TEXT
/// (as `chat send` does) or chats there.
async fn dm(
    client: &Client,
    events: Events,
    out: &Output,
    user: &str,
    text: Vec<String>,
    lines: usize,
) -> Result<()> {
    let joined = client
        .dm(user)
        .await
        .with_context(|| format!("cannot open direct messages with {user:?}"))?;
    if text.is_empty() {
        return interactive(client, events, out, joined, lines).await;
    }
    drop(events);
    let send = Action::Send {
        text: text.join(" "),
        reply_to: None,
    };
    let room = &joined.room;
    let ack = client
        .write(room, send.clone())
        .await
        .with_context(|| format!("cannot {}", describe_action(room, &send)))?;
    out.ack(&ack, &send);
    Ok(())
}

/// `chat read ROOM SEQ`: moves the read marker and prints where it stands.
async fn read(client: &Client, out: &Output, room: &str, seq: u64) -> Result<()> {
    let read = client
        .read(room, seq)
        .await
        .with_context(|| format!("cannot mark #{room} read up to {seq}"))?;
    out.read(&read);
    Ok(())
}

/// How long, after the last line of input was acked, to wait for its echo.
const ECHO_WAIT: Duration = Duration::from_secs(5);

/// `chat ROOM`: joins the room and chats there.
async fn chat_in(
    client: &Client,
    events: Events,
    out: &Output,
    room: &str,
    lines: usize,
) -> Result<()> {
    let joined = client
        .join(room)
        .await
        .with_context(|| format!("cannot join {room:?}"))?;
    interactive(client, events, out, joined, lines).await
}

/// Chats in the room `joined` answered for: lines of stdin are sent, the
/// room is printed.
async fn interactive(
    client: &Client,
    mut events: Events,
    out: &Output,
    joined: Joined,
    lines: usize,
) -> Result<()> {
    let room = joined.room.as_str();
    if !out.json {
        let names: Vec<&str> = joined.members.iter().map(|m| m.name.as_str()).collect();
        eprintln!(
            "chat: joined #{room} as {} (here: {}); type to send, /quit or end of input to leave",
            client.session().user.name,
            names.join(", ")
        );
    }
    let mut state = joined.room_state();
    let skip = joined.recent.len().saturating_sub(lines);
    for message in &joined.recent[skip..] {
        out.message(message);
    }
    let mut input = read_stdin_lines();
    let sender = {
        let client = client.clone();
        let room = room.to_owned();
        tokio::spawn(async move {
            let mut last_acked = None;
            while let Some(line) = input.recv().await {
                let text = line.trim_end_matches(['\r', '\n']);
                if text.trim() == "/quit" {
                    break;
                }
                if text.trim().is_empty() {
                    continue;
                }
                match client.send(&room, text).await {
                    Ok(ack) => last_acked = Some(ack.seq),
                    Err(error) => eprintln!("chat: not sent: {error}"),
                }
            }
            last_acked
        })
    };
    tokio::pin!(sender);
    // Once input ends: the seq whose echo we wait for before exiting.
    let mut finishing: Option<Option<u64>> = None;
    let mut highest_printed = 0u64;
    let echo_deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(echo_deadline);
    loop {
        if let Some(wait_for) = finishing
            && wait_for.is_none_or(|seq| highest_printed >= seq)
        {
            return Ok(());
        }
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Ok(()) };
                if event.room() == Some(room) && out.entry(&event, &mut state) {
                    // Entries come in order: our message is printed once
                    // anything at or after its seq is.
                    highest_printed = state.last_seq;
                    continue;
                }
                match event {
                    Event::Presence { room: r, event, user } if r == room => {
                        out.presence(&r, event, &user);
                    }
                    Event::Typing { room: r, user } if r == room => out.typing(&r, &user),
                    other => out.connection_note(&other)?,
                }
            }
            last_acked = &mut sender, if finishing.is_none() => {
                finishing = Some(last_acked.unwrap_or(None));
                echo_deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + ECHO_WAIT);
            }
            () = &mut echo_deadline => return Ok(()),
        }
    }
}

/// Lines of stdin, read on a plain thread: a read blocked on a terminal
/// cannot be cancelled, and the process must still be able to exit.
fn read_stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Prints to stdout in the chosen format.
struct Output {
    json: bool,
}

impl Output {
    fn line(&self, line: &str) {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (`chat tail … | head`): nothing left to do.
            std::process::exit(0);
        }
    }

    fn message(&self, message: &Message) {
        if self.json {
            self.line(&ServerFrame::Message(message.clone()).to_json());
        } else {
            self.line(&message_line(message));
        }
    }

    /// Prints a message or change of the room after applying it to
    /// `state`; `false` (nothing printed) for other events.
    fn entry(&self, event: &Event, state: &mut RoomState) -> bool {
        if !event.apply_to(state) {
            return false;
        }
        match event {
            Event::Message(message) => self.message(message),
            Event::Change(change) => self.change(change, state),
            _ => {}
        }
        true
    }

    /// A change, already applied to `state`: the line of the message it
    /// changed, as that message now is; a note for a pin, or when the
    /// message is older than what we hold.
    fn change(&self, change: &Change, state: &RoomState) {
        if self.json {
            self.line(&ServerFrame::from(change.clone()).to_json());
            return;
        }
        match (change, state.messages.get(&change.target())) {
            (Change::Pinned(_), _) | (_, None) => self.line(&change_note(change, state)),
            (_, Some(message)) => self.line(&message_line(message)),
        }
    }

    /// A search result: its line, or with `--json` the message object as
    /// the server's `search_results` listed it.
    fn result(&self, message: &Message) {
        if self.json {
            // A plain struct of strings and integers: serializing cannot fail.
            self.line(&serde_json::to_string(message).unwrap_or_default());
        } else {
            self.line(&message_line(message));
        }
    }

    /// A history page: its messages, in their current state; with `--json`
    /// its changes too, every entry in `seq` order, for scripts that page
    /// on with `--after`.
    fn page(&self, page: &History) {
        if !self.json {
            for message in &page.messages {
                self.message(message);
            }
            return;
        }
        let mut entries: Vec<(u64, String)> = page
            .messages
            .iter()
            .map(|m| (m.seq, ServerFrame::Message(m.clone()).to_json()))
            .collect();
        entries.extend(
            page.events
                .iter()
                .map(|c| (c.seq(), ServerFrame::from(c.clone()).to_json())),
        );
        entries.sort_by_key(|(seq, _)| *seq);
        for (_, json) in entries {
            self.line(&json);
        }
    }

    fn presence(&self, room: &str, event: PresenceEvent, user: &chat_client::User) {
        if self.json {
            self.line(
                &ServerFrame::Presence(PresenceBody {
                    room: room.to_owned(),
                    event,
                    user: user.clone(),
                })
                .to_json(),
            );
        } else {
            let what = match event {
                PresenceEvent::Join => "joined",
                PresenceEvent::Leave => "left",
            };
            self.line(&format!(
                "[{}] #{room} * {} {what}",
                clock(now_ms()),
                user.name
            ));
        }
    }

    /// Typing notices are for scripts; on a terminal they would drown the
    /// conversation.
    fn typing(&self, room: &str, user: &chat_client::User) {
        if self.json {
            self.line(
                &ServerFrame::Typing(TypingBody {
                    room: room.to_owned(),
                    user: user.clone(),
                })
                .to_json(),
            );
        }
    }

    /// A room of `chat rooms`, for the user whose id is `me`.
    fn room_summary(&self, summary: &RoomSummary, me: &str) {
        if self.json {
            // Strings, integers and messages: serializing cannot fail.
            self.line(&serde_json::to_string(summary).unwrap_or_default());
        } else {
            self.line(&room_summary_line(summary, me));
        }
    }

    fn directory_entry(&self, entry: &DirectoryEntry) {
        if self.json {
            self.line(&serde_json::to_string(entry).unwrap_or_default());
        } else {
            self.line(&directory_line(entry));
        }
    }

    /// A read marker as the server's reply placed it.
    fn read(&self, read: &ReadBody) {
        if self.json {
            let frame = ServerFrame::Read {
                reference: None,
                body: read.clone(),
            };
            self.line(&frame.to_json());
        } else {
            self.line(&format!(
                "read #{} up to {}: {}",
                read.room,
                read.seq,
                unread_note(read.unread, read.unread_mentions)
            ));
        }
    }

    fn ack(&self, ack: &Ack, action: &Action) {
        if self.json {
            self.line(
                &ServerFrame::Ack {
                    reference: None,
                    body: AckBody {
                        room: ack.room.clone(),
                        id: ack.id.clone(),
                        seq: ack.seq,
                        ts: ack.ts,
                        duplicate: ack.duplicate,
                    },
                }
                .to_json(),
            );
        } else {
            self.line(&ack_line(ack, action));
        }
    }

    /// Connection events go to stderr; the end of the client is an error
    /// unless we closed it.
    fn connection_note(&self, event: &Event) -> Result<()> {
        match event {
            Event::Reconnecting {
                attempt,
                delay,
                reason,
            } if *attempt == 1 => eprintln!(
                "chat: connection lost ({reason}); reconnecting in {:.1}s",
                delay.as_secs_f64()
            ),
            Event::Reconnecting {
                attempt,
                delay,
                reason,
            } => eprintln!(
                "chat: reconnect failed ({reason}); attempt {attempt} in {:.1}s",
                delay.as_secs_f64()
            ),
            Event::Reconnected(session) => {
                eprintln!("chat: reconnected as {}", session.user.name);
            }
            Event::RoomAdded { room, with } => eprintln!(
                "chat: direct messages with {} opened ({room}); `chat dm {}` to join",
                with.name, with.id
            ),
            Event::RejoinFailed {
                room,
                code,
                message,
            } => bail!("cannot re-join {room}: {code}: {message}"),
            Event::RoomRemoved { room, message, .. } => bail!("removed from {room}: {message}"),
            Event::Closed(CloseReason::ByClient) => {}
            Event::Closed(reason) => bail!("connection closed: {reason:?}"),
            _ => {}
        }
        Ok(())
    }
}

/// `#general 2 unread, 1 mention: [HH:MM:SS] bob: text`, or `@bob …` for
/// a direct-message room, whose name (`dm:…`) says less than who is in it.
fn room_summary_line(summary: &RoomSummary, me: &str) -> String {
    let label = match (&summary.with, chat_client::dm_peer(&summary.room, me)) {
        (Some(with), _) => format!("@{}", with.name),
        // A server that left `with` out: the peer's id is in the name.
        (None, Some(peer)) => format!("@{peer}"),
        (None, None) => format!("#{}", summary.room),
    };
    let unread = unread_note(summary.unread, summary.unread_mentions);
    match &summary.last {
        Some(last) => format!(
            "{label} {unread}: [{}] {}: {}",
            clock(last.ts),
            last.from.name,
            message_body(last)
        ),
        None => format!("{label} {unread}"),
    }
}

/// `3 unread`, `3 unread, 1 mention`.
fn unread_note(unread: u64, mentions: u64) -> String {
    match mentions {
        0 => format!("{unread} unread"),
        1 => format!("{unread} unread, 1 mention"),
        n => format!("{unread} unread, {n} mentions"),
    }
}

/// `#general 3 members, seq 10, active [HH:MM:SS]`.
fn directory_line(entry: &DirectoryEntry) -> String {
    let members = match entry.members {
        1 => "1 member".to_owned(),
        n => format!("{n} members"),
    };
    let active = entry
        .last_ts
        .map_or(String::new(), |ts| format!(", active [{}]", clock(ts)));
    format!("#{} {members}, seq {}{active}", entry.room, entry.seq)
}

/// `[HH:MM:SS] #room seq name: text`, the text as the message now is.
fn message_line(message: &Message) -> String {
    format!(
        "[{}] #{} {} {}: {}",
        clock(message.ts),
        message.room,
        message.seq,
        message.from.name,
        message_body(message)
    )
}

/// The text with what happened to it: the message it replies to,
/// `(edited)`, its reactions; `(message deleted)` for a tombstone.
fn message_body(message: &Message) -> String {
    if message.deleted {
        return "(message deleted)".into();
    }
    let mut body = String::new();
    if let Some(to) = message.reply_to {
        body.push_str(&reply_note(to, message.quote.as_ref()));
        body.push(' ');
    }
    body.push_str(&message.text);
    if message.edited_at.is_some() {
        body.push_str(" (edited)");
    }
    if !message.reactions.is_empty() {
        body.push_str("  ");
        body.push_str(&reactions_note(&message.reactions));
    }
    body
}

/// `(re 7 alice: "the start of 7")`: which message a reply answers.
fn reply_note(to: u64, quote: Option<&Quote>) -> String {
    match quote {
        Some(quote) if quote.deleted => format!("(re {to}: message deleted)"),
        Some(quote) => format!("(re {to} {}: \"{}\")", quote.from.name, quote.text),
        // The quoted message is no longer stored.
        None => format!("(re {to})"),
    }
}

/// `[👍 2, 🎉 1]`
fn reactions_note(reactions: &[Reaction]) -> String {
    let each: Vec<String> = reactions
        .iter()
        .map(|r| format!("{} {}", r.emoji, r.count))
        .collect();
    format!("[{}]", each.join(", "))
}

/// `[HH:MM:SS] #room * who did what to seq`, for changes shown as notes.
fn change_note(change: &Change, state: &RoomState) -> String {
    let target = change.target();
    let (who, what) = match change {
        Change::Edited(edit) => (&edit.from, format!("edited {target}")),
        Change::Deleted(delete) => (&delete.from, format!("deleted {target}")),
        Change::Reaction(r) if r.remove => (&r.from, format!("took back {} on {target}", r.emoji)),
        Change::Reaction(r) => (&r.from, format!("reacted {} to {target}", r.emoji)),
        Change::Pinned(pin) if pin.pinned => (&pin.from, format!("pinned {target}")),
        Change::Pinned(pin) => (&pin.from, format!("unpinned {target}")),
    };
    let known = state.messages.get(&target).or(match change {
        Change::Pinned(pin) => pin.message.as_deref(),
        _ => None,
    });
    let shown = known.map_or(String::new(), |m| {
        format!(": {}: {}", m.from.name, message_body(m))
    });
    format!(
        "[{}] #{} * {} {what}{shown}",
        clock(change.ts()),
        change.room(),
        who.name
    )
}

/// The human line for an ack: `sent #general seq 42 id …`,
/// `edited #general 7: seq 43 id …`, ….
fn ack_line(ack: &Ack, action: &Action) -> String {
    let room = &ack.room;
    let receipt = format!("seq {} id {}", ack.seq, ack.id);
    let line = match action {
        Action::Send { reply_to: None, .. } => format!("sent #{room} {receipt}"),
        Action::Send {
            reply_to: Some(to), ..
        } => format!("sent #{room} {receipt} (reply to {to})"),
        Action::Edit { seq, .. } => format!("edited #{room} {seq}: {receipt}"),
        Action::Delete { seq } => format!("deleted #{room} {seq}: {receipt}"),
        Action::React {
            seq,
            emoji,
            remove: false,
        } => format!("reacted {emoji} to #{room} {seq}: {receipt}"),
        Action::React { seq, emoji, .. } => {
            format!("took back {emoji} on #{room} {seq}: {receipt}")
        }
        Action::Pin { seq, remove: false } => format!("pinned #{room} {seq}: {receipt}"),
        Action::Pin { seq, .. } => format!("unpinned #{room} {seq}: {receipt}"),
        other => format!("stored {other:?} in #{room}: {receipt}"),
    };
    if ack.duplicate {
        format!("{line} (already stored)")
    } else {
        line
    }
}

/// `HH:MM:SS` of a server timestamp, UTC.
fn clock(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use chat_client::User;

    use super::*;

    fn user(id: &str, name: &str) -> User {
        User {
            id: id.into(),
            name: name.into(),
        }
    }

    fn summary(room: &str, with: Option<User>, last: Option<Message>) -> RoomSummary {
        RoomSummary {
            room: room.into(),
            seq: 3,
            last_read: 1,
            unread: 2,
            unread_mentions: 0,
            last,
            with,
        }
    }

    #[test]
    fn rooms_show_their_counts_and_last_message_and_dms_their_person() {
        let last = Message {
            room: "general".into(),
            seq: 3,
            from: user("u_b", "bob"),
            text: "hi @alice".into(),
            ts: 3_723_000,
            ..Message::default()
        };
        let mut general = summary("general", None, Some(last));
        general.unread_mentions = 1;
        assert_eq!(
            room_summary_line(&general, "u_a"),
            "#general 2 unread, 1 mention: [01:02:03] bob: hi @alice"
        );
        let dm = summary("dm:u_a,u_b", Some(user("u_b", "bob")), None);
        assert_eq!(room_summary_line(&dm, "u_a"), "@bob 2 unread");
        // Without `with`, the other person's id from the room's name.
        let dm = summary("dm:u_a,u_b", None, None);
        assert_eq!(room_summary_line(&dm, "u_a"), "@u_b 2 unread");
        assert_eq!(unread_note(0, 3), "0 unread, 3 mentions");
    }

    #[test]
    fn directory_lines_say_how_big_and_how_recent() {
        let entry = DirectoryEntry {
            room: "general".into(),
            members: 3,
            seq: 10,
            last_ts: Some(3_723_000),
        };
        assert_eq!(
            directory_line(&entry),
            "#general 3 members, seq 10, active [01:02:03]"
        );
        let empty = DirectoryEntry {
            room: "new".into(),
            members: 1,
            seq: 0,
            last_ts: None,
        };
        assert_eq!(directory_line(&empty), "#new 1 member, seq 0");
    }

    #[test]
    fn the_guest_token_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("sub/guest");
        assert_eq!(read_guest_token(&path).expect("no file is no token"), None);
        write_guest_token(&path, "g.1").expect("write");
        write_guest_token(&path, "g.2").expect("overwrite");
        assert_eq!(
            read_guest_token(&path).expect("read").as_deref(),
            Some("g.2")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the token is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["guest"]);
        std::fs::write(&path, "\n").expect("empty it");
        assert_eq!(read_guest_token(&path).expect("read"), None);
    }
}
