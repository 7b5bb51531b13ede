//! The [`Store`](chat_core::store::Store) backends: [`SqliteStore`],
//! embedded, for a single node (the default), and [`PostgresStore`], shared,
//! for several nodes over one history (`--database-url`). The trait, and
//! what it promises, is the core's (`chat_core::store`).

pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[cfg(test)]
mod committer_over_sqlite;

/// Builders and views the stores' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use chat_core::store::{Appended, Draft};
    use chat_protocol::User;

    /// A draft from `alice` whose text names its id.
    pub fn draft(room: &str, id: &str) -> Draft {
        Draft {
            room: room.into(),
            id: id.into(),
            from: User {
                id: "u1".into(),
                name: "alice".into(),
            },
            text: format!("text of {id}"),
        }
    }

    /// The seqs of a page.
    pub fn page_seqs(page: &chat_core::store::Page) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    /// Tombstones, retention and the room list, the same on every backend:
    /// a deleted message keeps its place, a purge never renumbers, and the
    /// next append continues the room's count.
    pub async fn check_tombstones_and_purge(store: &dyn chat_core::store::Store) {
        use chat_core::store::Retention;
        store.check_commit().await.unwrap();
        let drafts = (1..=10).map(|i| draft("a", &format!("m{i}"))).collect();
        store.append(drafts, 1_000).await.unwrap();
        store.append(vec![draft("b", "x")], 5_000).await.unwrap();

        let tomb = store.delete("a", 3).await.unwrap().expect("seq 3 exists");
        assert!(tomb.deleted && tomb.text.is_empty() && tomb.seq == 3 && tomb.id == "m3");
        assert_eq!(store.delete("a", 3).await.unwrap(), Some(tomb.clone()));
        assert_eq!(store.delete("a", 99).await.unwrap(), None);
        assert_eq!(store.delete("nowhere", 1).await.unwrap(), None);
        let page = store.after("a", 0, 100).await.unwrap();
        assert_eq!(page_seqs(&page), (1..=10).collect::<Vec<_>>());
        assert_eq!(page.messages[2], tomb);
        assert!(!page.messages[3].deleted && page.messages[3].text == "text of m4");
        // A retry of the deleted message's id is still a duplicate.
        let out = store.append(vec![draft("a", "m3")], 2_000).await.unwrap();
        assert_eq!(seqs(&out), [(false, 3)]);

        assert_eq!(
            store.rooms().await.unwrap(),
            [("a".to_string(), 10), ("b".to_string(), 1)]
        );

        let keep_4 = Retention {
            keep_last: Some(4),
            older_than_ts: None,
        };
        assert_eq!(store.purge(keep_4).await.unwrap(), 6);
        assert_eq!(store.purge(keep_4).await.unwrap(), 0);
        let page = store.after("a", 0, 100).await.unwrap();
        assert_eq!((page_seqs(&page), page.latest_seq), (vec![7, 8, 9, 10], 10));
        let page = store.before("a", Some(8), 100).await.unwrap();
        assert_eq!((page_seqs(&page), page.more), (vec![7], false));
        // Numbering goes on after the purge: nothing is reused.
        let out = store.append(vec![draft("a", "m11")], 6_000).await.unwrap();
        assert_eq!(seqs(&out), [(true, 11)]);

        let old = Retention {
            keep_last: None,
            older_than_ts: Some(4_000),
        };
        assert_eq!(store.purge(old).await.unwrap(), 4);
        assert_eq!(page_seqs(&store.after("a", 0, 100).await.unwrap()), [11]);
        assert_eq!(page_seqs(&store.after("b", 0, 100).await.unwrap()), [1]);
        assert_eq!(
            store.rooms().await.unwrap(),
            [("a".to_string(), 11), ("b".to_string(), 1)]
        );
    }

    /// Each outcome as (stored anew, seq).
    pub fn seqs(outcomes: &[Appended]) -> Vec<(bool, u64)> {
        outcomes
            .iter()
            .map(|o| match o {
                Appended::New(m) => (true, m.seq),
                Appended::Duplicate(m) => (false, m.seq),
            })
            .collect()
    }
}
