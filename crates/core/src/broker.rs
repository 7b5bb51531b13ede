//! Fan-out between nodes behind the [`Broker`] trait.
//!
//! Every room event (stored message, presence change, typing) is published
//! through the broker, which hands it to the room registry of every node
//! with members in that room. On a single node the in-process
//! [`LocalBroker`] hands it straight to the local registry; in cluster mode
//! a broker built by the server (Redis, in `chat-server`) carries it
//! between nodes, orders each room's messages by `seq` on the receiving
//! side (filling gaps from the store), and keeps presence cluster-wide. The
//! core never delivers to its own registry directly, so one code path
//! serves both.

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::{ServerFrame, User};

use crate::RoomEvent;
use crate::bans::BanChange;
use crate::event::ConnId;
use crate::rooms::Rooms;

/// Why the broker cannot serve now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The cluster's messaging (Redis) cannot be reached.
    #[error("cluster broker unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes an event to every member of its room, cluster-wide. Events
    /// of one room published from one task arrive in the order published;
    /// messages reach every member in `seq` order.
    fn publish(&self, event: Arc<RoomEvent>);

    /// Delivers `frame` to every connection of `user`, cluster-wide, but
    /// `skip` (a connection of this node, which was answered already).
    fn publish_to_user(&self, user: &str, frame: ServerFrame, skip: Option<ConnId>);

    /// Tells the other nodes of a ban made or lifted on this one, which
    /// has carried it out already; each carries it out on its own
    /// connections ([`Rooms::enforce`], announcing who left). A single
    /// node has no one to tell.
    fn publish_ban(&self, _change: &BanChange) {}

    /// A connection of this node joins `room` (not a re-join). Resolves once
    /// the room's events published from now on reach this node, so the
    /// history read that follows misses nothing. Every call, whatever its
    /// outcome, is matched by one [`Broker::unsubscribe`].
    async fn subscribe(&self, _room: &Arc<str>) -> Result<(), BrokerError> {
        Ok(())
    }

    /// A connection of this node left `room`.
    fn unsubscribe(&self, _room: &Arc<str>) {}

    /// Members of `room` connected to other nodes, one entry per user.
    fn remote_members(&self, _room: &str) -> Vec<User> {
        Vec::new()
    }

    /// Whether events can reach the other nodes now; sends are refused
    /// while they cannot.
    fn health(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

/// The single-node broker: delivery is a direct call into the registry.
#[derive(Debug)]
pub struct LocalBroker {
    rooms: Arc<Rooms>,
}

impl LocalBroker {
    pub fn new(rooms: Arc<Rooms>) -> Self {
        LocalBroker { rooms }
    }
}

#[async_trait]
impl Broker for LocalBroker {
    fn publish(&self, event: Arc<RoomEvent>) {
        self.rooms.deliver(&event);
    }

    fn publish_to_user(&self, user: &str, frame: ServerFrame, skip: Option<ConnId>) {
        self.rooms.deliver_to_user(user, &frame, skip);
    }
}
