//! `--changes-percent`: a share of each sender's sends are changes to its
//! own latest message instead of new messages, as people edit and react
//! between messages.
//!
//! The changes alternate between an edit, whose new text carries the send's
//! latency stamp (so `edited` deliveries are measured like messages), and a
//! reaction, which has no text: its deliveries count, and their `seq`s are
//! checked, but carry no latency. A reaction is added, or taken back when the
//! sender's reaction is already on that message, so no change is a no-op
//! the server would answer as a duplicate. Which sends are changes is spread
//! evenly: with 10 %, every tenth.
//!
//! Native protocol only: the peers this bench compares with have no changes.

use std::io::Write as _;

/// What one send is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Message,
    Edit { target: u64 },
    React { target: u64, remove: bool },
}

/// The emoji the bench reacts with.
const EMOJI: &str = "👍";

/// One sender's mix of messages and changes.
#[derive(Debug)]
pub struct ChangeMix {
    percent: u64,
    /// Sends decided so far.
    sends: u64,
    /// The `seq` of the sender's latest acked message.
    latest: Option<u64>,
    /// The message that carries the sender's reaction.
    reacted: Option<u64>,
    /// Whether the next change is an edit (else a reaction).
    edit_next: bool,
    /// Whether each outstanding send is a change, at `ref % ring`.
    changes: Vec<bool>,
}

impl ChangeMix {
    /// A mix with `percent` changes (1 to 100), for refs kept in a ring of
    /// `ring` slots.
    pub fn new(percent: u64, ring: usize) -> ChangeMix {
        ChangeMix {
            percent: percent.min(100),
            sends: 0,
            latest: None,
            reacted: None,
            edit_next: true,
            changes: vec![false; ring],
        }
    }

    /// Decides what send `reference` is. A change needs a message to
    /// change: until the sender's first message is acked, it sends
    /// messages.
    pub fn next(&mut self, reference: u64) -> Next {
        let before = self.sends * self.percent / 100;
        self.sends += 1;
        let is_change = self.sends * self.percent / 100 > before;
        let next = match (is_change, self.latest) {
            (true, Some(target)) if self.edit_next => Next::Edit { target },
            (true, Some(target)) => {
                let remove = self.reacted == Some(target);
                self.reacted = if remove { None } else { Some(target) };
                Next::React { target, remove }
            }
            _ => Next::Message,
        };
        if next != Next::Message {
            self.edit_next = !self.edit_next;
        }
        let slot = (reference % self.changes.len() as u64) as usize;
        self.changes[slot] = next != Next::Message;
        next
    }

    /// Send `reference` was acked with `seq`: a message's becomes the
    /// target of the changes that follow.
    pub fn acked(&mut self, reference: u64, seq: u64) {
        let slot = (reference % self.changes.len() as u64) as usize;
        if !self.changes[slot] && self.latest.is_none_or(|latest| seq > latest) {
            self.latest = Some(seq);
        }
    }

    /// Writes the frame of a change (not of a message) with `ref`
    /// `reference`; an edit's new text is `text`.
    pub fn write(next: Next, room_json: &str, text: &str, reference: u64, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = match next {
            Next::Message => Ok(()),
            Next::Edit { target } => write!(
                out,
                r#"{{"type":"edit","room":{room_json},"seq":{target},"text":{},"ref":{reference}}}"#,
                serde_json::Value::from(text)
            ),
            Next::React { target, remove } => write!(
                out,
                r#"{{"type":"react","room":{room_json},"seq":{target},"emoji":"{EMOJI}","remove":{remove},"ref":{reference}}}"#
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_send_in_ten_is_a_change_once_there_is_a_message() {
        let mut mix = ChangeMix::new(10, 64);
        let mut kinds = Vec::new();
        for reference in 1..=40 {
            let next = mix.next(reference);
            if next == Next::Message {
                mix.acked(reference, reference * 2);
            }
            kinds.push(next);
        }
        let changes: Vec<(usize, Next)> = kinds
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != Next::Message)
            .map(|(i, n)| (i, *n))
            .collect();
        assert_eq!(changes.len(), 4);
        assert_eq!(changes[0], (9, Next::Edit { target: 18 }));
        assert_eq!(
            changes[1],
            (
                19,
                Next::React {
                    target: 38,
                    remove: false
                }
            )
        );
        assert_eq!(changes[2], (29, Next::Edit { target: 58 }));
        assert_eq!(
            changes[3],
            (
                39,
                Next::React {
                    target: 78,
                    remove: false
                }
            )
        );
    }

    #[test]
    fn a_reaction_already_there_is_taken_back_and_change_acks_do_not_move_the_target() {
        let mut mix = ChangeMix::new(100, 64);
        // Every send a change: no message yet, so messages first.
        assert_eq!(mix.next(1), Next::Message);
        mix.acked(1, 5);
        assert_eq!(mix.next(2), Next::Edit { target: 5 });
        mix.acked(2, 6);
        assert_eq!(
            mix.next(3),
            Next::React {
                target: 5,
                remove: false
            }
        );
        mix.acked(3, 7);
        assert_eq!(mix.next(4), Next::Edit { target: 5 });
        assert_eq!(
            mix.next(5),
            Next::React {
                target: 5,
                remove: true
            }
        );
        assert_eq!(mix.next(6), Next::Edit { target: 5 });
        assert_eq!(
            mix.next(7),
            Next::React {
                target: 5,
                remove: false
            }
        );
    }

    #[test]
    fn change_frames_parse_as_the_server_parses_them() {
        use chat_protocol::{Request, parse_request};
        let mut out = Vec::new();
        ChangeMix::write(Next::Edit { target: 3 }, r#""r""#, "t \"1\"", 9, &mut out);
        let parsed = parse_request(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(
            parsed.request,
            Request::Edit {
                room: "r".into(),
                seq: 3,
                text: "t \"1\"".into(),
                id: None
            }
        );
        out.clear();
        let react = Next::React {
            target: 3,
            remove: true,
        };
        ChangeMix::write(react, r#""r""#, "", 10, &mut out);
        let parsed = parse_request(std::str::from_utf8(&out).unwrap()).unwrap();
        assert!(matches!(
            parsed.request,
            Request::React {
                seq: 3,
                remove: true,
                ..
            }
        ));
    }
}
