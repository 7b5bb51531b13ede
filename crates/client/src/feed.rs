//! Per-room ordering: turns the messages a connection sees (live
//! broadcasts, `joined` backlogs, history pages, overlapping and possibly
//! with a hole) into one sequence with no gaps and no repeats.
//!
//! This is the de-duplication and resume logic of `docs/protocol.md` §5,
//! kept free of I/O so it can be tested on its own: the connection feeds it
//! messages and asks it whether a history page is needed.

use std::collections::BTreeMap;

use chat_protocol::Message;

/// The delivery state of one joined room.
#[derive(Debug)]
pub(crate) struct Feed {
    /// The highest `seq` delivered; everything up to it has been delivered.
    last: u64,
    /// Messages above a hole, waiting for the hole to be filled.
    waiting: BTreeMap<u64, Message>,
    /// The highest `seq` known to exist in the room.
    known: u64,
    /// A catch-up history page has been asked for and not answered.
    fetching: bool,
}

impl Feed {
    /// A feed whose next delivered message is `last + 1`.
    pub(crate) fn after(last: u64) -> Feed {
        Feed {
            last,
            waiting: BTreeMap::new(),
            known: last,
            fetching: false,
        }
    }

    /// The highest `seq` delivered: where a resume starts (`since`).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Records the room's latest `seq` as the server reported it (`joined`).
    pub(crate) fn learn_latest(&mut self, seq: u64) {
        self.known = self.known.max(seq);
    }

    /// Takes one message; appends to `out`, in order, every message that can
    /// now be delivered. Already delivered ones are dropped.
    pub(crate) fn offer(&mut self, message: Message, out: &mut Vec<Message>) {
        if message.seq <= self.last {
            return;
        }
        self.known = self.known.max(message.seq);
        self.waiting.entry(message.seq).or_insert(message);
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<Message>) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() != self.last + 1 {
                break;
            }
            out.push(entry.remove());
            self.last += 1;
        }
    }

    /// When messages are known to be missing and no page is being fetched:
    /// the `after` bound of the history page to ask for next. Marks the
    /// fetch as started.
    pub(crate) fn next_fetch(&mut self) -> Option<u64> {
        if self.fetching || self.last >= self.known {
            return None;
        }
        self.fetching = true;
        Some(self.last)
    }

    /// A catch-up page (`history` with `after`) arrived. `more` says newer
    /// messages exist beyond it.
    pub(crate) fn page(&mut self, messages: Vec<Message>, more: bool, out: &mut Vec<Message>) {
        self.fetching = false;
        for message in messages {
            self.offer(message, out);
        }
        if more {
            self.known = self.known.max(self.last + 1);
        } else if self.last < self.known {
            // The server has nothing after `last`, yet we saw or were told of
            // later messages: it cannot fill the hole (this does not happen
            // with a conforming server). Skip it rather than stall the room.
            match self.waiting.keys().next() {
                Some(&first) => {
                    self.last = first - 1;
                    self.drain(out);
                }
                None => self.known = self.last,
            }
        }
    }

    /// The connection was lost: an unanswered page request is gone with it.
    pub(crate) fn connection_lost(&mut self) {
        self.fetching = false;
    }
}

#[cfg(test)]
mod tests {
    use chat_protocol::User;

    use super::*;

    fn msg(seq: u64) -> Message {
        Message {
            room: "r".into(),
            seq,
            id: format!("m{seq}"),
            from: User {
                id: "u".into(),
                name: "n".into(),
            },
            text: format!("text {seq}"),
            ts: 0,
            deleted: false,
            ..Default::default()
        }
    }

    fn seqs(out: &[Message]) -> Vec<u64> {
        out.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn delivers_in_order_and_drops_repeats() {
        let mut feed = Feed::after(2);
        let mut out = Vec::new();
        for seq in [1, 2, 3, 3, 4, 2, 5] {
            feed.offer(msg(seq), &mut out);
        }
        assert_eq!(seqs(&out), [3, 4, 5]);
        assert_eq!(feed.last(), 5);
        assert_eq!(feed.next_fetch(), None);
    }

    #[test]
    fn a_hole_holds_later_messages_back_and_asks_for_a_page() {
        let mut feed = Feed::after(0);
        let mut out = Vec::new();
        feed.offer(msg(1), &mut out);
        feed.offer(msg(4), &mut out);
        feed.offer(msg(5), &mut out);
        assert_eq!(seqs(&out), [1]);
        assert_eq!(feed.next_fetch(), Some(1));
        assert_eq!(feed.next_fetch(), None, "one page at a time");
        feed.page(vec![msg(2), msg(3), msg(4)], false, &mut out);
        assert_eq!(seqs(&out), [1, 2, 3, 4, 5]);
        assert_eq!(feed.next_fetch(), None);
    }

    #[test]
    fn an_incomplete_join_pages_until_caught_up() {
        // Joined with since=10: the reply held 11..=12 of 11..=16.
        let mut feed = Feed::after(10);
        let mut out = Vec::new();
        feed.learn_latest(16);
        feed.offer(msg(11), &mut out);
        feed.offer(msg(12), &mut out);
        // A live message arrives while paging.
        feed.offer(msg(17), &mut out);
        assert_eq!(feed.next_fetch(), Some(12));
        feed.page(vec![msg(13), msg(14)], true, &mut out);
        assert_eq!(feed.next_fetch(), Some(14));
        feed.page(vec![msg(15), msg(16), msg(17)], false, &mut out);
        assert_eq!(seqs(&out), (11..=17).collect::<Vec<_>>());
        assert_eq!(feed.next_fetch(), None);
    }

    #[test]
    fn more_without_new_messages_keeps_paging() {
        let mut feed = Feed::after(3);
        let mut out = Vec::new();
        feed.learn_latest(3);
        feed.fetching = true;
        feed.page(vec![], true, &mut out);
        assert_eq!(feed.next_fetch(), Some(3));
    }

    #[test]
    fn a_hole_the_server_cannot_fill_is_skipped() {
        let mut feed = Feed::after(1);
        let mut out = Vec::new();
        feed.offer(msg(4), &mut out);
        assert_eq!(feed.next_fetch(), Some(1));
        feed.page(vec![], false, &mut out);
        assert_eq!(seqs(&out), [4]);
        assert_eq!(feed.next_fetch(), None);

        let mut feed = Feed::after(1);
        feed.learn_latest(9);
        assert_eq!(feed.next_fetch(), Some(1));
        feed.page(vec![], false, &mut out);
        assert_eq!(feed.next_fetch(), None);
    }

    #[test]
    fn a_lost_connection_forgets_the_page_in_flight() {
        let mut feed = Feed::after(0);
        feed.learn_latest(5);
        assert_eq!(feed.next_fetch(), Some(0));
        feed.connection_lost();
        assert_eq!(feed.next_fetch(), Some(0));
    }
}
