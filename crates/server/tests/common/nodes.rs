//! Scenarios that run twice: on one node (SQLite), and on a cluster of
//! three nodes on PostgreSQL and Redis with the scenario's clients spread
//! over them (ignored unless asked for: `scripts/test` provides the
//! services).

use super::Server;
use super::cluster::Cluster;

/// The nodes a scenario runs on: one, or a cluster's three.
pub struct Nodes(Vec<Server>);

impl Nodes {
    pub fn one(args: &[&str]) -> Nodes {
        Nodes(vec![Server::start(args)])
    }

    pub fn cluster(cluster: &Cluster, args: &[&str]) -> Nodes {
        Nodes((0..3).map(|_| cluster.node(args)).collect())
    }

    /// Node `i`, counting round the nodes there are.
    pub fn at(&self, i: usize) -> &Server {
        &self.0[i % self.0.len()]
    }
}

/// A test of each `scenario` (an `async fn(&Nodes)` of the calling file)
/// on one node, in module `one_node`, and one on a cluster, in `cluster`.
// Each test binary compiles `common` whole; most have no such scenarios.
#[allow(unused_macros)]
macro_rules! on_one_node_and_a_cluster {
    ($($scenario:ident),* $(,)?) => {
        mod one_node {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(&crate::common::nodes::Nodes::one(&[])).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL and Redis: scripts/test provides them"]
                async fn $scenario() {
                    let cluster = crate::common::cluster::Cluster::new().await;
                    let nodes = crate::common::nodes::Nodes::cluster(&cluster, &[]);
                    super::$scenario(&nodes).await;
                }
            )*
        }
    };
}

#[allow(unused_imports)]
pub(crate) use on_one_node_and_a_cluster;
