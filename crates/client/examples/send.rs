//! Sends one message and prints its ack.
//!
//! ```text
//! cargo run -p chat-client --example send -- general "hello from Rust"
//! ```
//!
//! The server URL comes from `CHAT_URL` (default `ws://127.0.0.1:3000/ws`).
//! A send must come from a member of the room, so the example joins first.

use chat_client::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(room), Some(text)) = (args.next(), args.next()) else {
        eprintln!("usage: send ROOM TEXT");
        std::process::exit(2);
    };
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "ws://127.0.0.1:3000/ws".into());

    let (client, _events) = ClientBuilder::new(url)
        .name("example-sender")
        .connect()
        .await?;
    client.join(&room).await?;
    // Resolves once the message is durably stored; retried with the same id
    // across reconnects, so it is stored once.
    let ack = client.send(&room, &text).await?;
    println!("stored in #{} as seq {} (id {})", ack.room, ack.seq, ack.id);
    client.close().await;
    Ok(())
}
