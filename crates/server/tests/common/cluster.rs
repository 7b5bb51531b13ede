//! A cluster for the tests: one PostgreSQL schema and one Redis key prefix
//! of the test's own (removed at the end), and nodes started on them. The
//! services come from `CHAT_TEST_DATABASE_URL` and `CHAT_TEST_REDIS_URL`
//! (defaults: the machine's own); a test that needs them and finds them
//! missing fails, naming what is missing.

use std::time::Duration;

use tokio_postgres::NoTls;

use super::{NO_RATE_LIMIT, Server};

pub const DEFAULT_DB_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// Node TTL in these tests: a killed node's users leave within about
/// 1.33 times this.
pub const NODE_TTL_MS: u64 = 2000;

/// A service these tests need is missing: they run only when asked
/// (ignored unless asked for; `scripts/test` provides the services), so that fails.
pub fn missing(what: &str, why: &str) -> ! {
    panic!("{what} is unavailable ({why}); scripts/test sets up what these tests need")
}

/// Runs `work` on a runtime of its own on another thread (for cleanup in
/// `Drop`, inside the test's runtime).
pub fn on_own_runtime<F, Fut>(work: F) -> Result<(), String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(work())
    })
    .join()
    .unwrap_or_else(|_| Err("cleanup thread panicked".into()))
}

/// One PostgreSQL schema and one Redis prefix for a test's cluster.
pub struct Cluster {
    pub db_url: String,
    pub schema: String,
    pub redis_url: String,
    pub prefix: String,
}

impl Cluster {
    pub async fn new() -> Cluster {
        Cluster::with_redis(
            std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into()),
        )
        .await
    }

    /// `redis_url`: the shared test Redis, or a private one.
    pub async fn with_redis(redis_url: String) -> Cluster {
        let db_url =
            std::env::var("CHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DB_URL.into());
        let connect = tokio_postgres::connect(&db_url, NoTls);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => missing(&format!("PostgreSQL at {db_url}"), &e.to_string()),
            Err(_) => missing(&format!("PostgreSQL at {db_url}"), "timed out"),
        }
        if let Err(why) = redis_ping(&redis_url).await {
            missing(&format!("Redis at {redis_url}"), &why);
        }
        let id = ulid::Ulid::new().to_string().to_lowercase();
        Cluster {
            db_url,
            schema: format!("t_{id}"),
            redis_url,
            prefix: format!("test:{id}:"),
        }
    }

    pub fn args_with_ttl(&self, node_ttl_ms: u64, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--database-url",
            &self.db_url,
            "--database-schema",
            &self.schema,
            "--redis-url",
            &self.redis_url,
            "--redis-prefix",
            &self.prefix,
            "--node-ttl-ms",
            &node_ttl_ms.to_string(),
            "--outbound-queue",
            "20000",
            "--max-pending-sends",
            "20000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(NO_RATE_LIMIT.iter().chain(extra).map(|a| a.to_string()));
        args
    }

    pub fn node(&self, extra: &[&str]) -> Server {
        self.node_with_ttl(NODE_TTL_MS, extra)
    }

    pub fn node_with_ttl(&self, node_ttl_ms: u64, extra: &[&str]) -> Server {
        let args = self.args_with_ttl(node_ttl_ms, extra);
        Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let (db_url, schema) = (self.db_url.clone(), self.schema.clone());
        let dropped = on_own_runtime(move || async move {
            let (client, connection) = tokio_postgres::connect(&db_url, NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                ))
                .await
                .map_err(|e| e.to_string())
        });
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
        let (redis_url, prefix) = (self.redis_url.clone(), self.prefix.clone());
        let _ = on_own_runtime(move || async move {
            let client = redis::Client::open(redis_url).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        });
    }
}

pub async fn redis_ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}
