//! What a `history` request asks for: [`HistoryQuery`].

/// Which page of history to fetch.
///
/// `before` and `after` are exclusive bounds; give at most one. Without
/// either, the latest messages. `after` pages forward and is an extension
/// of our server (`docs/protocol.md`), not part of protocol v1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub before: Option<u64>,
    pub after: Option<u64>,
    /// Page size; the server clamps it to 200. `None`: the server's default.
    pub limit: Option<u64>,
}

impl HistoryQuery {
    /// The latest `limit` messages.
    pub fn latest(limit: u64) -> HistoryQuery {
        HistoryQuery {
            limit: Some(limit),
            ..HistoryQuery::default()
        }
    }

    /// Up to `limit` messages with `seq < before`, the newest of them.
    pub fn before(before: u64, limit: u64) -> HistoryQuery {
        HistoryQuery {
            before: Some(before),
            limit: Some(limit),
            ..HistoryQuery::default()
        }
    }

    /// Up to `limit` messages with `seq > after`, the oldest of them.
    pub fn after(after: u64, limit: u64) -> HistoryQuery {
        HistoryQuery {
            after: Some(after),
            limit: Some(limit),
            ..HistoryQuery::default()
        }
    }
}
