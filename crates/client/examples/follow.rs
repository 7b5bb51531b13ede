//! Follows a room and prints every event, connection changes included.
//!
//! ```text
//! cargo run -p chat-client --example follow -- general 0
//! ```
//!
//! The optional second argument is a `seq` to resume after (here: the whole
//! history). Restart the server while this runs: the example prints the
//! reconnect, then the messages (and changes to them) sent meanwhile, each
//! exactly once and in order. The server URL comes from `CHAT_URL` (default
//! `ws://127.0.0.1:3000/ws`).

use chat_client::{ClientBuilder, Event};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(room) = args.next() else {
        eprintln!("usage: follow ROOM [SINCE]");
        std::process::exit(2);
    };
    let since: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "ws://127.0.0.1:3000/ws".into());

    let (client, mut events) = ClientBuilder::new(url)
        .name("example-follower")
        .connect()
        .await?;
    let joined = match since {
        Some(since) => client.join_since(&room, since).await?,
        None => client.join(&room).await?,
    };
    println!(
        "joined #{room} at seq {} with {} member(s)",
        joined.seq,
        joined.members.len()
    );

    // `Events` is a `Stream`, so stream combinators work too.
    while let Some(event) = events.next().await {
        match event {
            Event::Message(m) => println!("{} {}: {}", m.seq, m.from.name, m.text),
            // Edits, deletions, reactions and pins, in seq order with the
            // messages; `Event::apply_to` keeps a `RoomState` current.
            Event::Change(c) => println!("{} ({} of {})", c.seq(), c.type_name(), c.target()),
            Event::Presence { event, user, .. } => println!("* {} {event:?}", user.name),
            Event::Reconnecting {
                attempt: 1, reason, ..
            } => println!("! connection lost ({reason}); reconnecting"),
            Event::Reconnecting { attempt, delay, .. } => {
                println!("! still down; attempt {attempt} in {delay:.1?}");
            }
            Event::Reconnected(session) => println!("! reconnected as {}", session.user.name),
            Event::Closed(reason) => println!("! closed: {reason:?}"),
            _ => {}
        }
    }
    Ok(())
}
