//! `--read-every N`: members that send read markers as they go.
//!
//! Every member of a `fanout` or `ramp` fleet (the senders too: they
//! receive their room's messages like everyone else) sends
//! `{"type":"read","room":R,"seq":S,"ref":X}` after every N entries of its
//! room's sequence it received (messages and, with `--changes-percent`,
//! changes; each new `seq` once, so repeats and stale deliveries do not
//! count), `S` the highest `seq` it has received so far. N = 1 is a reader
//! marking each message read as it is shown.
//!
//! Reads are pipelined: the member does not wait for the answer (the
//! server answers once the marker is stored, in batches at most every
//! 50 ms), it keeps the send time of each outstanding read and matches the
//! answer — a `read` frame with the read's `ref` — when it comes, for the
//! read latency (send to answer). Read refs live in a range of their own,
//! from [`READ_REF_BASE`], far above any send's, so an `error` answering a
//! read is told from one answering a send by its `ref` alone, and an
//! answer is never taken for a delivery or an ack.
//!
//! Native protocol only.

use std::collections::VecDeque;
use std::io::Write as _;

/// The first `ref` of the reads; a sender's refs count up from 1 and never
/// get near it.
pub const READ_REF_BASE: u64 = 1 << 40;

// Exactly a JavaScript number too, as a ref had better be.
const _: () = assert!(READ_REF_BASE < 1 << 53);

/// Reads a member keeps track of while unanswered; when one more is sent,
/// the oldest is given up (it stays unanswered in the step's account).
pub const PENDING_MAX: usize = 1024;

/// Whether `reference` is the `ref` of a read (rather than of a send or
/// the join).
pub fn is_read_ref(reference: u64) -> bool {
    reference >= READ_REF_BASE
}

/// When a member reads: after every `every` new `seq`s, up to the highest
/// one so far.
#[derive(Debug, Clone)]
pub struct ReadEvery {
    every: u64,
    /// New `seq`s received since the last read.
    since: u64,
    /// The highest `seq` received.
    latest: u64,
}

impl ReadEvery {
    /// A read every `every` (at least 1) new `seq`s.
    pub fn new(every: u64) -> ReadEvery {
        ReadEvery {
            every: every.max(1),
            since: 0,
            latest: 0,
        }
    }

    /// A new `seq` was received; the `seq` to read up to when a read is
    /// due now.
    pub fn received(&mut self, seq: u64) -> Option<u64> {
        self.latest = self.latest.max(seq);
        self.since += 1;
        if self.since < self.every {
            return None;
        }
        self.since = 0;
        Some(self.latest)
    }
}

/// One member's reads: when to send them, the outstanding ones, and the
/// frames waiting to be written.
#[derive(Debug)]
pub struct Reader {
    every: ReadEvery,
    /// The room's name as a JSON string.
    room_json: std::sync::Arc<str>,
    next_ref: u64,
    /// `(ref, sent µs)` of each outstanding read, oldest first.
    pending: VecDeque<(u64, u64)>,
    /// `(ref, seq)` of the reads decided but not yet written.
    queued: Vec<(u64, u64)>,
    json: Vec<u8>,
}

impl Reader {
    pub fn new(every: u64, room_json: std::sync::Arc<str>) -> Reader {
        Reader {
            every: ReadEvery::new(every),
            room_json,
            next_ref: READ_REF_BASE,
            pending: VecDeque::new(),
            queued: Vec::new(),
            json: Vec::new(),
        }
    }

    /// A new `seq` was received at `now` (µs); whether that made a read
    /// due (it is queued for [`Reader::write_queued`]).
    pub fn received(&mut self, seq: u64, now: u64) -> bool {
        let Some(upto) = self.every.received(seq) else {
            return false;
        };
        let reference = self.next_ref;
        self.next_ref += 1;
        if self.pending.len() >= PENDING_MAX {
            self.pending.pop_front();
        }
        self.pending.push_back((reference, now));
        self.queued.push((reference, upto));
        true
    }

    /// Hands each queued read's frame to `queue`, in order; how many.
    pub fn write_queued(&mut self, mut queue: impl FnMut(&[u8])) -> u64 {
        let n = self.queued.len() as u64;
        for &(reference, seq) in &self.queued {
            self.json.clear();
            write_frame(&self.room_json, seq, reference, &mut self.json);
            queue(&self.json);
        }
        self.queued.clear();
        n
    }

    /// Read `reference` was answered (or refused); when it was sent, if it
    /// was outstanding.
    pub fn answered(&mut self, reference: u64) -> Option<u64> {
        // Answers come in order as a rule, so this is the front.
        let at = self.pending.iter().position(|&(r, _)| r == reference)?;
        self.pending.remove(at).map(|(_, sent)| sent)
    }

    /// Reads sent and not yet answered (those given up aside).
    pub fn pending(&self) -> u64 {
        self.pending.len() as u64
    }
}

/// Writes the frame of a read of `room_json` up to `seq` with `ref`
/// `reference`.
pub fn write_frame(room_json: &str, seq: u64, reference: u64, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        r#"{{"type":"read","room":{room_json},"seq":{seq},"ref":{reference}}}"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_one_reads_each_seq_as_it_comes() {
        let mut every = ReadEvery::new(1);
        assert_eq!(every.received(5), Some(5));
        assert_eq!(every.received(6), Some(6));
        // Out of order: the marker stays at the highest seq seen.
        assert_eq!(every.received(8), Some(8));
        assert_eq!(every.received(7), Some(8));
    }

    #[test]
    fn every_three_reads_the_latest_after_each_third() {
        let mut every = ReadEvery::new(3);
        let due: Vec<Option<u64>> = (11..=19).map(|seq| every.received(seq)).collect();
        assert_eq!(
            due,
            [
                None,
                None,
                Some(13),
                None,
                None,
                Some(16),
                None,
                None,
                Some(19)
            ]
        );
        // 0 is taken as 1 (the caller never builds a reader for 0: off).
        assert_eq!(ReadEvery::new(0).received(4), Some(4));
    }

    #[test]
    fn reads_are_queued_pipelined_and_matched_by_ref() {
        let mut reader = Reader::new(2, r#""bench-0""#.into());
        assert!(!reader.received(1, 100));
        assert!(reader.received(2, 200));
        assert!(!reader.received(3, 300));
        assert!(reader.received(4, 400));
        // Nothing waits for an answer: both are out.
        assert_eq!(reader.pending(), 2);
        let mut frames = Vec::new();
        assert_eq!(
            reader.write_queued(|f| frames.push(String::from_utf8(f.to_vec()).unwrap())),
            2
        );
        assert_eq!(
            frames,
            [
                format!(r#"{{"type":"read","room":"bench-0","seq":2,"ref":{READ_REF_BASE}}}"#),
                format!(
                    r#"{{"type":"read","room":"bench-0","seq":4,"ref":{}}}"#,
                    READ_REF_BASE + 1
                ),
            ]
        );
        assert_eq!(reader.write_queued(|_| panic!("written twice")), 0);
        // Answers in either order; each once.
        assert_eq!(reader.answered(READ_REF_BASE + 1), Some(400));
        assert_eq!(reader.answered(READ_REF_BASE + 1), None);
        assert_eq!(reader.answered(READ_REF_BASE), Some(200));
        assert_eq!(reader.pending(), 0);
        // Not a read of this reader's.
        assert_eq!(reader.answered(7), None);
    }

    #[test]
    fn read_refs_are_apart_from_send_refs() {
        assert!(!is_read_ref(0));
        assert!(!is_read_ref(1_000_000_000));
        assert!(is_read_ref(READ_REF_BASE));
    }

    #[test]
    fn the_oldest_read_is_given_up_past_the_limit() {
        let mut reader = Reader::new(1, r#""r""#.into());
        for seq in 1..=(PENDING_MAX as u64 + 1) {
            assert!(reader.received(seq, seq));
        }
        assert_eq!(reader.pending(), PENDING_MAX as u64);
        assert_eq!(reader.answered(READ_REF_BASE), None);
        assert_eq!(reader.answered(READ_REF_BASE + 1), Some(2));
    }

    #[test]
    fn read_frames_parse_as_the_server_parses_them() {
        use chat_protocol::{Ref, Request, parse_request};
        let mut out = Vec::new();
        write_frame(r#""bench-\"7\"""#, 42, READ_REF_BASE + 3, &mut out);
        let parsed = parse_request(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(
            parsed.request,
            Request::Read {
                room: "bench-\"7\"".into(),
                seq: 42
            }
        );
        assert_eq!(
            parsed.reference,
            Some(Ref::Number((READ_REF_BASE + 3).into()))
        );
    }
}
