//! Per-room ordering: turns the entries a connection sees (live
//! broadcasts, `joined` backlogs, history pages, overlapping and possibly
//! with a hole) into one sequence with no gaps and no repeats.
//!
//! A room's sequence holds messages and changes to them (edits, deletions,
//! reactions, pins), numbered by one `seq`: both are [`Entry`]s here, and a
//! change's `seq` fills its place in the sequence like a message's does.
//!
//! This is the de-duplication and resume logic of `docs/protocol.md` §5,
//! kept free of I/O so it can be tested on its own: the connection feeds it
//! entries and asks it whether a history page is needed.

use std::collections::BTreeMap;

use chat_protocol::{Change, Message};

use crate::event::Event;

/// One entry of a room's sequence: a message, or a change to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Message(Message),
    Change(Change),
}

impl Entry {
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Entry::Message(message) => message.seq,
            Entry::Change(change) => change.seq(),
        }
    }

    /// The entries of a `joined` or `history` reply, in any order (the feed
    /// sorts them by `seq`).
    pub(crate) fn all(messages: Vec<Message>, changes: Vec<Change>) -> Vec<Entry> {
        let messages = messages.into_iter().map(Entry::Message);
        messages
            .chain(changes.into_iter().map(Entry::Change))
            .collect()
    }
}

impl From<Entry> for Event {
    fn from(entry: Entry) -> Event {
        match entry {
            Entry::Message(message) => Event::Message(message),
            Entry::Change(change) => Event::Change(change),
        }
    }
}

/// The delivery state of one joined room.
#[derive(Debug)]
pub(crate) struct Feed {
    /// The highest `seq` delivered, message or change; everything up to it
    /// has been delivered.
    last: u64,
    /// Entries above a hole, waiting for the hole to be filled.
    waiting: BTreeMap<u64, Entry>,
    /// The highest `seq` known to exist in the room.
    known: u64,
    /// A catch-up history page has been asked for and not answered.
    fetching: bool,
}

impl Feed {
    /// A feed whose next delivered entry is `last + 1`.
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

    /// Takes one entry; appends to `out`, in order, every entry that can
    /// now be delivered. Already delivered ones are dropped.
    pub(crate) fn offer(&mut self, entry: Entry, out: &mut Vec<Entry>) {
        let seq = entry.seq();
        if seq <= self.last {
            return;
        }
        self.known = self.known.max(seq);
        self.waiting.entry(seq).or_insert(entry);
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<Entry>) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() != self.last + 1 {
                break;
            }
            out.push(entry.remove());
            self.last += 1;
        }
    }

    /// When entries are known to be missing and no page is being fetched:
    /// the `after` bound of the history page to ask for next. Marks the
    /// fetch as started.
    pub(crate) fn next_fetch(&mut self) -> Option<u64> {
        if self.fetching || self.last >= self.known {
            return None;
        }
        self.fetching = true;
        Some(self.last)
    }

    /// A catch-up page (`history` with `after`) arrived: its messages and
    /// changes. `more` says newer entries exist beyond it.
    pub(crate) fn page(
        &mut self,
        after: u64,
        entries: Vec<Entry>,
        more: bool,
        out: &mut Vec<Entry>,
    ) {
        self.fetching = false;
        if let Some(first) = entries.iter().map(Entry::seq).min() {
            self.skip_missing(after, first);
        }
        for entry in entries {
            self.offer(entry, out);
        }
        if more {
            self.known = self.known.max(self.last + 1);
        } else if self.last < self.known {
            // The server has nothing after `last`, yet we saw or were told of
            // later entries: it cannot fill the hole (this does not happen
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

    /// A page after `after` lists the oldest entries there are: those
    /// numbered between `after` and its `first` are gone (purged by the
    /// server's retention), so they are no hole to wait for. Without this,
    /// a resume from before a purged range would ask for the same page
    /// forever.
    fn skip_missing(&mut self, after: u64, first: u64) {
        if self.last >= after && first > self.last + 1 {
            self.last = first - 1;
            // Nothing can be waiting below `first`; were a server to have
            // sent such an entry live, it would block the feed.
            self.waiting = self.waiting.split_off(&first);
        }
    }

    /// The connection was lost: an unanswered page request is gone with it.
    pub(crate) fn connection_lost(&mut self) {
        self.fetching = false;
    }
}

#[cfg(test)]
mod tests {
    use chat_protocol::{DeletedBody, EditedBody, User};

    use super::*;

    fn user() -> User {
        User {
            id: "u".into(),
            name: "n".into(),
        }
    }

    fn message(seq: u64) -> Message {
        Message {
            room: "r".into(),
            seq,
            id: format!("m{seq}"),
            from: user(),
            text: format!("text {seq}"),
            ts: 0,
            ..Default::default()
        }
    }

    fn msg(seq: u64) -> Entry {
        Entry::Message(message(seq))
    }

    fn edit(seq: u64, target: u64) -> Entry {
        Entry::Change(edited(seq, target))
    }

    fn edited(seq: u64, target: u64) -> Change {
        Change::Edited(EditedBody {
            room: "r".into(),
            seq,
            id: format!("e{seq}"),
            target,
            from: user(),
            text: format!("edited by {seq}"),
            ts: 0,
        })
    }

    fn delete(seq: u64, target: u64) -> Entry {
        Entry::Change(Change::Deleted(DeletedBody {
            room: "r".into(),
            seq,
            id: format!("d{seq}"),
            target,
            from: user(),
            ts: 0,
        }))
    }

    fn msgs(seqs: impl IntoIterator<Item = u64>) -> Vec<Entry> {
        seqs.into_iter().map(msg).collect()
    }

    fn seqs(out: &[Entry]) -> Vec<u64> {
        out.iter().map(Entry::seq).collect()
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
    fn changes_take_their_place_in_the_sequence() {
        let mut feed = Feed::after(0);
        let mut out = Vec::new();
        for entry in [msg(1), edit(3, 1), msg(2), delete(4, 2), edit(3, 1), msg(5)] {
            feed.offer(entry, &mut out);
        }
        assert_eq!(seqs(&out), [1, 2, 3, 4, 5]);
        assert!(matches!(&out[2], Entry::Change(Change::Edited(e)) if e.target == 1));
        assert!(matches!(&out[3], Entry::Change(Change::Deleted(d)) if d.target == 2));
        // The resume cursor counts changes too.
        assert_eq!(feed.last(), 5);
        let events: Vec<Event> = out.into_iter().map(Event::from).collect();
        assert!(matches!(events[2], Event::Change(_)));
        assert!(matches!(events[4], Event::Message(_)));
    }

    #[test]
    fn a_missing_change_is_a_hole_like_a_missing_message() {
        let mut feed = Feed::after(0);
        let mut out = Vec::new();
        feed.offer(msg(1), &mut out);
        feed.offer(msg(3), &mut out);
        assert_eq!(seqs(&out), [1]);
        assert_eq!(feed.next_fetch(), Some(1));
        feed.page(1, vec![edit(2, 1)], false, &mut out);
        assert_eq!(seqs(&out), [1, 2, 3]);
    }

    #[test]
    fn a_hole_holds_later_entries_back_and_asks_for_a_page() {
        let mut feed = Feed::after(0);
        let mut out = Vec::new();
        feed.offer(msg(1), &mut out);
        feed.offer(msg(4), &mut out);
        feed.offer(msg(5), &mut out);
        assert_eq!(seqs(&out), [1]);
        assert_eq!(feed.next_fetch(), Some(1));
        assert_eq!(feed.next_fetch(), None, "one page at a time");
        feed.page(1, vec![msg(2), edit(3, 2), msg(4)], false, &mut out);
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
        feed.offer(edit(12, 11), &mut out);
        // A live message arrives while paging.
        feed.offer(msg(17), &mut out);
        assert_eq!(feed.next_fetch(), Some(12));
        // A page lists its messages, then its changes.
        let page = Entry::all(vec![message(14)], vec![edited(13, 11)]);
        feed.page(12, page, true, &mut out);
        assert_eq!(feed.next_fetch(), Some(14));
        feed.page(14, vec![msg(15), msg(17), delete(16, 15)], false, &mut out);
        assert_eq!(seqs(&out), (11..=17).collect::<Vec<_>>());
        assert_eq!(feed.next_fetch(), None);
    }

    #[test]
    fn more_without_new_entries_keeps_paging() {
        let mut feed = Feed::after(3);
        let mut out = Vec::new();
        feed.learn_latest(3);
        feed.fetching = true;
        feed.page(3, vec![], true, &mut out);
        assert_eq!(feed.next_fetch(), Some(3));
    }

    #[test]
    fn a_hole_the_server_cannot_fill_is_skipped() {
        let mut feed = Feed::after(1);
        let mut out = Vec::new();
        feed.offer(msg(4), &mut out);
        assert_eq!(feed.next_fetch(), Some(1));
        feed.page(1, vec![], false, &mut out);
        assert_eq!(seqs(&out), [4]);
        assert_eq!(feed.next_fetch(), None);

        let mut feed = Feed::after(1);
        feed.learn_latest(9);
        assert_eq!(feed.next_fetch(), Some(1));
        feed.page(1, vec![], false, &mut out);
        assert_eq!(feed.next_fetch(), None);
    }

    #[test]
    fn entries_purged_below_a_page_are_skipped_not_asked_for_again() {
        // Resuming after 5 in a room whose entries up to 99 were purged:
        // the first page starts at 100 and has more after it.
        let mut feed = Feed::after(5);
        let mut out = Vec::new();
        feed.learn_latest(300);
        assert_eq!(feed.next_fetch(), Some(5));
        feed.page(5, msgs(100..=299), true, &mut out);
        assert_eq!(seqs(&out), (100..=299).collect::<Vec<_>>());
        assert_eq!(feed.next_fetch(), Some(299), "the next page, not the same");
        feed.page(299, msgs([300]), false, &mut out);
        assert_eq!(feed.last(), 300);
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
