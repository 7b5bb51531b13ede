//! `chat`: a command-line client for `chat-server`, built on the
//! `chat-client` library.
//!
//! ```text
//! chat tail general                    # print messages as they arrive
//! chat tail general --since 120        # everything after seq 120, then live
//! chat send general "hello there"      # prints the ack; non-zero exit on failure
//! chat history general --limit 20
//! chat general                         # interactive: type lines, see the room
//! echo hi | chat --json general        # works with piped stdin too
//! ```
//!
//! Human output is one line per message, `[HH:MM:SS] #room seq name: text`
//! (server time, UTC). With `--json` each line is one frame as the server
//! sent it (`{"type":"message",...}`), for scripts. Notes about the
//! connection (reconnecting, …) go to stderr, so stdout holds only the room.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chat_client::{
    Ack, Client, ClientBuilder, CloseReason, Event, Events, HistoryQuery, Message, PresenceEvent,
};
use chat_protocol::{AckBody, PresenceBody, ServerFrame, TypingBody};
use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

/// Command-line client for chat-server: tail a room, send, read history, or
/// chat interactively.
///
/// `chat ROOM` is short for `chat chat ROOM`.
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
        /// Exit after printing this many messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Send one message and print its ack (seq); exit non-zero on failure.
    Send {
        room: String,
        /// The message (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Message id, for a retry that must not be stored twice.
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
    /// Chat interactively: lines from stdin are sent, the room is printed.
    /// Ends at end of input (after our last message is echoed) or on /quit.
    Chat {
        room: String,
        /// How many recent messages to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
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
    let (client, events) = connect(&cli.global).await?;
    let result = match cli.command {
        Command::Tail {
            room,
            since,
            lines,
            count,
        } => tail(&client, events, &out, &room, since, lines, count).await,
        Command::Send { room, text, id } => {
            drop(events);
            send(&client, &out, &room, &text.join(" "), id.as_deref()).await
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
        Command::Chat { room, lines } => interactive(&client, events, &out, &room, lines).await,
        // Checked above: exactly one word, the room.
        Command::Room(words) => interactive(&client, events, &out, &words.concat(), 10).await,
    };
    client.close().await;
    result
}

async fn connect(global: &Global) -> Result<(Client, Events)> {
    let mut builder =
        ClientBuilder::new(&global.url).request_timeout(Duration::from_secs(global.timeout));
    if let Some(name) = &global.name {
        builder = builder.name(name);
    }
    if let Some(token) = &global.token {
        builder = builder.token(token);
    }
    builder
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", global.url))
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
    match since {
        Some(since) => {
            client
                .join_since(room, since)
                .await
                .with_context(|| format!("cannot join {room:?}"))?;
        }
        None => {
            let joined = client
                .join(room)
                .await
                .with_context(|| format!("cannot join {room:?}"))?;
            let skip = joined.recent.len().saturating_sub(lines);
            for message in &joined.recent[skip..] {
                if done(printed) {
                    return Ok(());
                }
                out.message(message);
                printed += 1;
            }
        }
    }
    while !done(printed) {
        let Some(event) = events.recv().await else {
            break;
        };
        match event {
            Event::Message(message) if message.room == room => {
                out.message(&message);
                printed += 1;
            }
            other => out.connection_note(&other)?,
        }
    }
    Ok(())
}

async fn send(
    client: &Client,
    out: &Output,
    room: &str,
    text: &str,
    id: Option<&str>,
) -> Result<()> {
    client
        .join(room)
        .await
        .with_context(|| format!("cannot join {room:?}"))?;
    let ack = match id {
        Some(id) => client.send_with_id(room, text, id).await,
        None => client.send(room, text).await,
    }
    .with_context(|| format!("cannot send to {room:?}"))?;
    out.ack(&ack);
    Ok(())
}

async fn history(client: &Client, out: &Output, room: &str, query: HistoryQuery) -> Result<()> {
    let page = client
        .history(room, query)
        .await
        .with_context(|| format!("cannot read the history of {room:?}"))?;
    for message in &page.messages {
        out.message(message);
    }
    if page.more && !out.json {
        let hint = match (query.after, page.messages.last(), page.messages.first()) {
            (Some(_), Some(last), _) => format!("--after {}", last.seq),
            (None, _, Some(first)) => format!("--before {}", first.seq),
            _ => String::new(),
        };
        eprintln!("chat: more messages exist ({hint})");
    }
    Ok(())
}

/// How long, after the last line of input was acked, to wait for its echo.
const ECHO_WAIT: Duration = Duration::from_secs(5);

async fn interactive(
    client: &Client,
    mut events: Events,
    out: &Output,
    room: &str,
    lines: usize,
) -> Result<()> {
    let joined = client
        .join(room)
        .await
        .with_context(|| format!("cannot join {room:?}"))?;
    if !out.json {
        let names: Vec<&str> = joined.members.iter().map(|m| m.name.as_str()).collect();
        eprintln!(
            "chat: joined #{room} as {} (here: {}); type to send, /quit or end of input to leave",
            client.session().user.name,
            names.join(", ")
        );
    }
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
                match event {
                    Event::Message(message) if message.room == room => {
                        highest_printed = highest_printed.max(message.seq);
                        out.message(&message);
                    }
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
            self.line(&format!(
                "[{}] #{} {} {}: {}",
                clock(message.ts),
                message.room,
                message.seq,
                message.from.name,
                message.text
            ));
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

    fn ack(&self, ack: &Ack) {
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
            let again = if ack.duplicate {
                " (already stored)"
            } else {
                ""
            };
            self.line(&format!(
                "sent #{} seq {} id {}{again}",
                ack.room, ack.seq, ack.id
            ));
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
            Event::RejoinFailed {
                room,
                code,
                message,
            } => bail!("cannot re-join {room}: {code}: {message}"),
            Event::Closed(CloseReason::ByClient) => {}
            Event::Closed(reason) => bail!("connection closed: {reason:?}"),
            _ => {}
        }
        Ok(())
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
