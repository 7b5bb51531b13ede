//! Fan-out between nodes behind the [`Broker`] trait.
//!
//! Every room event (stored message, presence change, typing) is published
//! through the broker, which hands it to the room registry of every node
//! with members in that room. On a single node the in-process broker hands
//! it straight to the local registry; a cluster broker carries it over the
//! network first. The core never delivers to its own registry directly, so
//! one code path serves both.

use std::sync::Arc;

use crate::core::RoomEvent;
use crate::core::rooms::Rooms;

pub trait Broker: Send + Sync + 'static {
    /// Publishes an event to every member of its room, cluster-wide. Events
    /// of one room published from one task arrive in the order published.
    fn publish(&self, event: Arc<RoomEvent>);
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

impl Broker for LocalBroker {
    fn publish(&self, event: Arc<RoomEvent>) {
        self.rooms.deliver(&event);
    }
}
