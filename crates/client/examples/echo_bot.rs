//! A bot that answers every message starting with `!echo ` in a room.
//!
//! ```text
//! cargo run -p chat-client --example echo_bot -- general
//! ```
//!
//! Shows the usual shape of a client program: one task reads events, and a
//! clone of the `Client` handle sends from another task, so a slow send
//! never holds up reading. The server URL comes from `CHAT_URL` (default
//! `ws://127.0.0.1:3000/ws`).

use chat_client::{ClientBuilder, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(room) = std::env::args().nth(1) else {
        eprintln!("usage: echo_bot ROOM");
        std::process::exit(2);
    };
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "ws://127.0.0.1:3000/ws".into());

    let (client, mut events) = ClientBuilder::new(url).name("echo-bot").connect().await?;
    client.join(&room).await?;
    println!("echo-bot is in #{room}; say `!echo something`");

    while let Some(event) = events.recv().await {
        let Event::Message(message) = event else {
            continue;
        };
        // Our own replies come back as events too; the session's user id
        // tells them apart (it changes on reconnect, so read it each time).
        if message.from.id == client.session().user.id {
            continue;
        }
        let Some(words) = message.text.strip_prefix("!echo ") else {
            continue;
        };
        let reply = format!("{} said: {words}", message.from.name);
        let (client, room) = (client.clone(), room.clone());
        tokio::spawn(async move {
            if let Err(error) = client.send(&room, &reply).await {
                eprintln!("could not reply: {error}");
            }
        });
    }
    Ok(())
}
