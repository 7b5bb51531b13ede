//! Per-room ordering of messages on the receiving side of a cluster.
//!
//! Messages of a room are numbered by the store, but reach a node from
//! several publishers (its own committer, and every other node through
//! Redis), so they may arrive out of order, twice, or not at all (pub/sub
//! drops messages while a connection is down; a node may die between its
//! commit and its publish). A [`Sequencer`] keeps the last `seq` it
//! released, holds later messages until the ones before them arrive, and
//! drops what it already released. Its owner fills a gap that stays open
//! from the store ([`Store::after`](chat_core::store::Store::after)).

use std::collections::BTreeMap;
use std::sync::Arc;

use chat_core::RoomEvent;

/// Held messages beyond which a gap is filled at once.
pub const MAX_HELD: usize = 4096;

#[derive(Debug, Default)]
pub struct Sequencer {
    /// The last `seq` released; `None` until the baseline is known.
    last: Option<u64>,
    held: BTreeMap<u64, Arc<RoomEvent>>,
}

impl Sequencer {
    pub fn new() -> Self {
        Sequencer::default()
    }

    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Offers the message `event` numbered `seq`; returns the messages to
    /// deliver now, in `seq` order, with no gaps or repeats.
    pub fn offer(&mut self, seq: u64, event: Arc<RoomEvent>) -> Vec<Arc<RoomEvent>> {
        if self.last.is_some_and(|last| seq <= last) {
            return Vec::new();
        }
        self.held.entry(seq).or_insert(event);
        self.release()
    }

    /// Sets where delivery starts (the room's latest `seq` when this node
    /// began listening), once; returns what became deliverable.
    pub fn start_at(&mut self, latest: u64) -> Vec<Arc<RoomEvent>> {
        if self.last.is_some() {
            return Vec::new();
        }
        self.last = Some(latest);
        self.release()
    }

    /// Whether a message is held behind a missing one.
    pub fn has_gap(&self) -> bool {
        self.last.is_some() && !self.held.is_empty()
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn release(&mut self) -> Vec<Arc<RoomEvent>> {
        let Some(mut last) = self.last else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            if seq <= last {
                entry.remove();
            } else if seq == last + 1 {
                out.push(entry.remove());
                last = seq;
            } else {
                break;
            }
        }
        self.last = Some(last);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::EventKind;
    use chat_protocol::{Message, User};

    fn msg(seq: u64) -> Arc<RoomEvent> {
        RoomEvent::new(
            "r".into(),
            EventKind::Message(Message {
                room: "r".into(),
                seq,
                id: format!("m{seq}"),
                from: User {
                    id: "u".into(),
                    name: "u".into(),
                },
                text: "t".into(),
                ts: 0,
                deleted: false,
                ..Default::default()
            }),
            None,
        )
    }

    fn seqs(events: Vec<Arc<RoomEvent>>) -> Vec<u64> {
        events.iter().filter_map(|e| e.seq()).collect()
    }

    #[test]
    fn holds_until_the_baseline_then_releases_in_order_without_repeats() {
        let mut s = Sequencer::new();
        assert!(seqs(s.offer(6, msg(6))).is_empty());
        assert!(seqs(s.offer(4, msg(4))).is_empty());
        assert_eq!(seqs(s.start_at(4)), Vec::<u64>::new());
        assert!(s.has_gap(), "5 is missing");
        assert_eq!(seqs(s.offer(5, msg(5))), [5, 6]);
        assert!(!s.has_gap());
        assert!(seqs(s.offer(5, msg(5))).is_empty(), "a repeat");
        assert!(seqs(s.offer(8, msg(8))).is_empty());
        assert!(seqs(s.offer(8, msg(8))).is_empty());
        assert_eq!(seqs(s.offer(7, msg(7))), [7, 8]);
        assert_eq!(s.last(), Some(8));
        assert!(seqs(s.start_at(100)).is_empty(), "the baseline is set once");
    }
}
