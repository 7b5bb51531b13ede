//! What a `search` request asks for: [`Search`].

/// A search for messages, an extension of our server
/// (`docs/protocol.md`, "search"): its words, and optionally the room to
/// search, the page to fetch and the page size.
///
/// A message matches when its text holds every word of `query` (words are
/// separated by spaces; 1–8 of them, at most 200 characters in all) as a
/// substring, in any script (`天气` finds `今天天气很好`), ignoring case
/// for ASCII letters.
///
/// A `&str` or a `String` is a search of every readable room with the
/// server's page size, so `client.search("deploy")` works; the builder
/// methods set the rest:
///
/// ```
/// use chat_client::Search;
///
/// let search = Search::new("deploy done").room("ops").limit(10);
/// assert_eq!(search.room.as_deref(), Some("ops"));
/// // The following page, once a reply has said where it starts:
/// let next = search.clone().cursor(1794);
/// assert_eq!(next.cursor, Some(1794));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The words to look for, separated by spaces.
    pub query: String,
    /// Search this room only. `None`: every room the user may read (all
    /// of them, or those the token's `rooms` claim allows). Either way no
    /// `join` is needed.
    pub room: Option<String>,
    /// Where the page starts: the [`SearchResults::next`](crate::SearchResults::next)
    /// of the page before. `None`: the first page (the newest matches).
    pub cursor: Option<u64>,
    /// Page size, 1–50; `None`: the server's default (20).
    pub limit: Option<u64>,
}

impl Search {
    /// A search for `query` in every readable room, first page, the
    /// server's page size.
    pub fn new(query: impl Into<String>) -> Search {
        Search {
            query: query.into(),
            room: None,
            cursor: None,
            limit: None,
        }
    }

    /// Searches `room` only.
    pub fn room(mut self, room: impl Into<String>) -> Search {
        self.room = Some(room.into());
        self
    }

    /// Fetches the page that starts at `cursor`, the
    /// [`next`](crate::SearchResults::next) of the page before.
    pub fn cursor(mut self, cursor: u64) -> Search {
        self.cursor = Some(cursor);
        self
    }

    /// At most `limit` results per page (the server allows 1–50).
    pub fn limit(mut self, limit: u64) -> Search {
        self.limit = Some(limit);
        self
    }
}

impl From<&str> for Search {
    fn from(query: &str) -> Search {
        Search::new(query)
    }
}

impl From<String> for Search {
    fn from(query: String) -> Search {
        Search::new(query)
    }
}

impl From<&String> for Search {
    fn from(query: &String) -> Search {
        Search::new(query.as_str())
    }
}
