//! The cluster's [`Broker`](chat_core::broker::Broker): [`RedisBroker`]
//! carries room events between nodes over Redis pub/sub, orders each room's
//! messages by `seq` on the receiving side ([`sequencer`], filling gaps
//! from the store), and keeps presence cluster-wide. A single node uses the
//! core's own `LocalBroker`.

pub mod redis;
pub mod sequencer;

pub use self::redis::{RedisBroker, RedisConfig};
