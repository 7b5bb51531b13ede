//! What the admin dashboard (`/admin`, `/api/admin/*`) knows of this node
//! and of the cluster: the sampler's history of this node's counters
//! ([`chat_core::stats`]), and the nodes' directory.
//!
//! **Nodes.** On one node the directory is this node. In cluster mode each
//! node writes its [`NodeSummary`] to Redis every third of `--node-ttl-ms`,
//! as the key `{prefix}dashboard:node:{id}` (expiring after three node
//! TTLs) listed in the set `{prefix}dashboard:nodes`. A reader marks a
//! node whose summary is older than one node TTL as stale (stopped or cut
//! off from Redis); its key then expires and the next reader takes it off
//! the set. These keys are the dashboard's own, apart from the broker's
//! liveness keys, so the broker's rules stay as they are.

use std::sync::Arc;
use std::time::Duration;

use chat_core::Hub;
use chat_core::committer::now_ms;
use chat_core::stats::{Counters, History};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// Key expiry of a node's summary, in node TTLs: a stopped node shows as
/// stale for two TTLs before it is gone.
const SUMMARY_TTLS: u32 = 3;

/// A new node id: `n_` and a lowercase ULID (also the broker's id).
pub fn new_node_id() -> String {
    format!("n_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A node as `GET /api/admin/nodes` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSummary {
    pub id: String,
    /// The address it listens on.
    pub address: String,
    pub version: String,
    /// When it started, Unix milliseconds.
    pub started: i64,
    pub connections: u64,
    pub ready: bool,
    /// `ready`, or why not (as `/readyz` says).
    pub health: String,
    /// When this summary was written, Unix milliseconds.
    pub heard: i64,
    /// Not heard from for longer than a node TTL (cluster mode).
    #[serde(default)]
    pub stale: bool,
}

/// The cluster's Redis, for the nodes' summaries.
pub struct ClusterDirectory {
    pub conn: ConnectionManager,
    pub prefix: String,
    pub node_ttl: Duration,
}

impl ClusterDirectory {
    fn node_key(&self, node: &str) -> String {
        format!("{}dashboard:node:{node}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}dashboard:nodes", self.prefix)
    }

    /// Writes `summary` with its expiry and lists it.
    async fn publish(&self, summary: &NodeSummary) -> redis::RedisResult<()> {
        let json = serde_json::to_string(summary).unwrap_or_default();
        let expiry = self.node_ttl * SUMMARY_TTLS;
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("SET")
            .arg(self.node_key(&summary.id))
            .arg(json)
            .arg("PX")
            .arg(expiry.as_millis().max(1) as u64)
            .ignore()
            .cmd("SADD")
            .arg(self.nodes_key())
            .arg(&summary.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// Every node's latest summary; ids whose key expired leave the set.
    async fn read(&self) -> redis::RedisResult<Vec<NodeSummary>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.nodes_key())
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.node_key(id)).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut gone = Vec::new();
        let mut nodes = Vec::new();
        let stale_before = now_ms() - i64::try_from(self.node_ttl.as_millis()).unwrap_or(i64::MAX);
        for (id, value) in ids.into_iter().zip(values) {
            match value.and_then(|json| serde_json::from_str::<NodeSummary>(&json).ok()) {
                Some(mut node) => {
                    node.stale = node.heard < stale_before;
                    nodes.push(node);
                }
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            redis::cmd("SREM")
                .arg(self.nodes_key())
                .arg(gone)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(nodes)
    }
}

/// Why the cluster's nodes could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the cluster's nodes from Redis: {0}")]
pub struct DirectoryError(#[from] redis::RedisError);

/// The dashboard's state: this node's identity, its history, the cluster.
pub struct Dashboard {
    pub node: String,
    pub address: String,
    pub started: i64,
    pub counters: Arc<Counters>,
    pub history: Arc<History>,
    /// `None`: a single node.
    pub cluster: Option<ClusterDirectory>,
}

impl Dashboard {
    /// This node's summary now.
    pub async fn summary(&self, hub: &Hub) -> NodeSummary {
        let health = hub.ready().await;
        NodeSummary {
            id: self.node.clone(),
            address: self.address.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started: self.started,
            connections: self.counters.connections(),
            ready: health.is_ok(),
            health: health.err().unwrap_or_else(|| "ready".into()),
            heard: now_ms(),
            stale: false,
        }
    }

    /// The cluster's nodes (this one with its summary of now), by id.
    pub async fn nodes(&self, hub: &Hub) -> Result<Vec<NodeSummary>, DirectoryError> {
        let me = self.summary(hub).await;
        let mut nodes = match &self.cluster {
            Some(cluster) => cluster.read().await?,
            None => Vec::new(),
        };
        nodes.retain(|node| node.id != me.id);
        nodes.push(me);
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// In cluster mode, writes this node's summary every third of the node
    /// TTL until the task is dropped; a failed write is logged and retried
    /// at the next beat.
    pub async fn beat(self: Arc<Self>, hub: Hub) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let mut ticks = tokio::time::interval(cluster.node_ttl / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let summary = self.summary(&hub).await;
            if let Err(error) = cluster.publish(&summary).await {
                tracing::debug!(%error, "cannot write this node's dashboard summary to Redis");
            }
        }
    }
}
