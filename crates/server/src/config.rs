//! Configuration from flags, `CHAT_*` environment variables and an optional
//! TOML file, in that order of precedence.
//!
//! One struct, [`Settings`], is both the clap parser and the file schema, so
//! a setting cannot exist in one place and be missing from the other. Every
//! field is optional there; [`Config::resolve`] layers flags over the file
//! and fills in defaults, one small function per section.
//!
//! Each default is one named constant (`DEFAULT_*`: here, in [`chat_core`]
//! for the core's limits, in [`crate::edge`] for the edge's), used by the code.
//! The help text cannot name a constant, so it spells the value out, and a
//! test renders `--help` and checks each `[default: …]` against its constant.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use crate::auth::{AuthConfig, JwtConfig, JwtKey, Secret};
use crate::edge::hosts::AllowedHosts;
use crate::edge::origin::AllowedOrigins;
use crate::edge::{self, EdgeConfig};
use crate::tls::TlsConfig;
use chat_core::admin::PURGE_INTERVAL;
use chat_core::stats::DEFAULT_STATS_INTERVAL;
use chat_core::{
    DEFAULT_COMMIT_BATCH, DEFAULT_ERROR_RATE, DEFAULT_MAX_PENDING_SENDS, DEFAULT_MAX_ROOM_CHARS,
    DEFAULT_MAX_ROOMS_PER_CONNECTION, DEFAULT_MAX_TEXT_CHARS, DEFAULT_OUTBOUND_QUEUE,
    DEFAULT_PRESENCE_DELAY, DEFAULT_SEARCH_RATE, DEFAULT_SEND_BURST, DEFAULT_SEND_RATE,
    DEFAULT_TYPING_RATE, Limits, RetentionPolicy,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `--listen` by default: loopback, so a fresh server is not on the network.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));
/// `--data-dir` by default, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "chat-data";
/// `--redis-prefix` by default.
pub const DEFAULT_REDIS_PREFIX: &str = "chat:";
/// `--heartbeat-ms` by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(25);
/// `--max-frame-bytes` by default.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// `--store-busy-timeout-ms` by default.
pub const DEFAULT_STORE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// `--shutdown-timeout-ms` by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// `--log-format` by default.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
/// `--log-level` by default.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// A real-time chat server: rooms, presence, typing, durable history and
/// resume-after-reconnect over WebSocket (`/ws`) and Socket.IO (`/socket.io/`).
///
/// Every option can also be set by the environment variable shown, or by
/// the same name in snake_case in the TOML file given with `--config`.
/// Flags win over the environment, which wins over the file.
#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(name = "chat-server", version, about, long_about)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// TOML file with settings (keys as below, in snake_case).
    #[arg(long, env = "CHAT_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "CHAT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory for the SQLite database [default: ./chat-data].
    #[arg(long, env = "CHAT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL URL (`postgres://user:password@host:5432/database`): keep
    /// history there instead of SQLite in --data-dir, so several nodes can
    /// share it. Tables are created or migrated at start-up.
    #[arg(long, env = "CHAT_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// PostgreSQL schema for the tables, created if missing (lowercase
    /// letters, digits, `_`) [default: the database's search_path, usually public].
    #[arg(long, env = "CHAT_DATABASE_SCHEMA", value_name = "NAME")]
    pub database_schema: Option<String>,

    /// Redis URL (`redis://host:6379/0`): cluster mode. Room events and
    /// presence reach every node sharing this Redis (and --database-url,
    /// which cluster mode needs: SQLite history cannot be shared).
    #[arg(long, env = "CHAT_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so several clusters (or
    /// tests) can share one Redis [default: chat:].
    #[arg(long, env = "CHAT_REDIS_PREFIX", value_name = "PREFIX")]
    pub redis_prefix: Option<String>,

    /// In cluster mode, how long a node that stops refreshing its Redis
    /// heartbeat counts as alive; its users then leave every room on the
    /// other nodes. Refreshed three times per period [default: --heartbeat-ms].
    #[arg(long, env = "CHAT_NODE_TTL_MS", value_name = "MS")]
    pub node_ttl_ms: Option<u64>,

    /// WebSocket ping interval; silent connections close after two [default: 25000].
    #[arg(long, env = "CHAT_HEARTBEAT_MS", value_name = "MS")]
    pub heartbeat_ms: Option<u64>,

    /// Largest WebSocket frame or message accepted, in bytes; larger ones close with 1009 [default: 65536].
    #[arg(long, env = "CHAT_MAX_FRAME_BYTES", value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Longest message text, in characters [default: 4000].
    #[arg(long, env = "CHAT_MAX_TEXT_CHARS", value_name = "N")]
    pub max_text_chars: Option<usize>,

    /// Longest room name, in characters [default: 64].
    #[arg(long, env = "CHAT_MAX_ROOM_CHARS", value_name = "N")]
    pub max_room_chars: Option<usize>,

    /// Sends per second per connection, on average [default: 20].
    #[arg(long, env = "CHAT_SEND_RATE", value_name = "N")]
    pub send_rate: Option<f64>,

    /// Sends a connection may burst above the rate [default: 40].
    #[arg(long, env = "CHAT_SEND_BURST", value_name = "N")]
    pub send_burst: Option<f64>,

    /// Typing notices per second per connection; excess ones are dropped [default: 5].
    #[arg(long, env = "CHAT_TYPING_RATE", value_name = "N")]
    pub typing_rate: Option<f64>,

    /// Searches per second per connection, in bursts of five times as
    /// many; more are refused with `rate_limited` [default: 2].
    #[arg(long, env = "CHAT_SEARCH_RATE", value_name = "N")]
    pub search_rate: Option<f64>,

    /// Refused requests (error replies) per second a connection may cause,
    /// in bursts of ten times as many; past that the server stops reading
    /// from it until the budget refills [default: 10].
    #[arg(long, env = "CHAT_MAX_ERRORS_PER_SEC", value_name = "N")]
    pub max_errors_per_sec: Option<f64>,

    /// Rooms one connection may be in at once [default: 100].
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_CONNECTION", value_name = "N")]
    pub max_rooms_per_connection: Option<usize>,

    /// Frames queued per connection before it is dropped as too slow (1013) [default: 1024].
    #[arg(long, env = "CHAT_OUTBOUND_QUEUE", value_name = "N")]
    pub outbound_queue: Option<usize>,

    /// Sends waiting for commit before new ones are refused as overloaded [default: 10000].
    #[arg(long, env = "CHAT_MAX_PENDING_SENDS", value_name = "N")]
    pub max_pending_sends: Option<usize>,

    /// Most messages stored per transaction (one fsync each) [default: 1024].
    #[arg(long, env = "CHAT_COMMIT_BATCH", value_name = "N")]
    pub commit_batch: Option<usize>,

    /// Start commits at least this far apart, so that under load each
    /// stores more messages for its fsync: less CPU per message, for up to
    /// this much (plus a millisecond) more latency; messages that come
    /// further apart never wait [default: 0, commit at once].
    #[arg(long, env = "CHAT_COMMIT_INTERVAL_MS", value_name = "MS")]
    pub commit_interval_ms: Option<u64>,

    /// How long a store operation waits for a locked database [default: 5000].
    #[arg(long, env = "CHAT_STORE_BUSY_TIMEOUT_MS", value_name = "MS")]
    pub store_busy_timeout_ms: Option<u64>,

    /// How long shutdown waits for connections to close [default: 5000].
    #[arg(long, env = "CHAT_SHUTDOWN_TIMEOUT_MS", value_name = "MS")]
    pub shutdown_timeout_ms: Option<u64>,

    /// Longest wait before presence and typing events are delivered, so that
    /// a burst of them (many people joining) reaches each member in one
    /// write; a message never waits, and takes waiting events of its room
    /// along first. 0 delivers each at once [default: 250].
    #[arg(long, env = "CHAT_PRESENCE_DELAY_MS", value_name = "MS")]
    pub presence_delay_ms: Option<u64>,

    /// Web pages from other sites allowed to connect, comma-separated:
    /// `https://app.example.com`, `http://localhost:*` (any port), or `*`
    /// (any site). The server's own origin is always allowed, and so are
    /// clients that are not web pages [default: http(s)://localhost:*,
    /// http(s)://127.0.0.1:*, `http(s)://[::1]:*`].
    #[arg(
        long,
        env = "CHAT_ALLOWED_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Option<Vec<String>>,

    /// Host names this server answers to, comma-separated: a name
    /// (`chat.example.com`, `*.example.com` for its subdomains), an IP
    /// address, or `*` (any). Requests for other names get 421: a page
    /// whose name was rebound to this server's address cannot use it
    /// [default: on a loopback listen address, localhost, 127.0.0.1, `[::1]`
    /// and that address; on any other, every name].
    #[arg(
        long,
        env = "CHAT_ALLOWED_HOSTS",
        value_name = "HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Option<Vec<String>>,

    /// How long a client has for its TLS handshake, and then for each
    /// request head (from accept, or from the previous answer on a
    /// kept-alive connection); slower connections are closed [default: 10000].
    #[arg(long, env = "CHAT_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub header_timeout_ms: Option<u64>,

    /// How long a request body may take to arrive, from its head [default: 30000].
    #[arg(long, env = "CHAT_BODY_TIMEOUT_MS", value_name = "MS")]
    pub body_timeout_ms: Option<u64>,

    /// Connections waiting for their TLS handshake or a request head, in
    /// all; past it, the one that has waited longest is closed [default: a
    /// quarter of the process's file limit, 64 to 16384].
    #[arg(long, env = "CHAT_MAX_PENDING_CONNECTIONS", value_name = "N")]
    pub max_pending_connections: Option<usize>,

    /// Connections one client IP address may have waiting for their TLS
    /// handshake or a request head; past it, that address's longest
    /// waiting one is closed [default: 256].
    #[arg(long, env = "CHAT_MAX_PENDING_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_pending_connections_per_ip: Option<usize>,

    /// Also serve `/ws-echo`, which echoes every message through `/ws`'s
    /// WebSocket layer (16 MiB messages), for conformance tests such as
    /// Autobahn|Testsuite. Off by default.
    #[arg(
        long,
        env = "CHAT_WS_ECHO",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub ws_echo: Option<bool>,

    /// Log format [default: text].
    #[arg(long, env = "CHAT_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log level or tracing filter, e.g. `debug` or `chat_server=debug,info` [default: info].
    #[arg(long, env = "CHAT_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// PEM certificate chain; with --tls-key, the server speaks https://
    /// and wss:// instead of http:// and ws://. Both files are read again
    /// on SIGHUP and when they change.
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Shared secret for HS256 tokens, at least 32 bytes. Prefer the
    /// environment or --jwt-secret-file: other users can read arguments.
    #[arg(
        long,
        env = "CHAT_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<Secret>,

    /// File holding the shared secret for HS256 tokens.
    #[arg(long, env = "CHAT_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// PEM public key for RS256 or ES256 tokens (also PS256, ES384, EdDSA…).
    #[arg(long, env = "CHAT_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// The one token algorithm accepted [default: HS256 for a secret; RS256,
    /// ES256, ES384 or EdDSA as the public key is].
    #[arg(long, env = "CHAT_JWT_ALGORITHM", value_name = "ALG")]
    pub jwt_algorithm: Option<String>,

    /// Required `aud` claim. Without it, tokens that carry an `aud` are refused.
    #[arg(long, env = "CHAT_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim.
    #[arg(long, env = "CHAT_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,

    /// Let connections without a token in as anonymous users [default: true
    /// without a JWT key, false with one].
    #[arg(long, env = "CHAT_ALLOW_ANONYMOUS", value_name = "BOOL")]
    pub allow_anonymous: Option<bool>,

    /// Secret that signs guests' credentials (what keeps a guest the same
    /// user across tabs and reconnects), at least 32 bytes. Without it, the
    /// server makes one on first start and keeps it in the data directory
    /// (or in PostgreSQL, shared by a cluster's nodes). Changing it makes
    /// every guest a new user.
    #[arg(
        long,
        env = "CHAT_GUEST_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub guest_secret: Option<Secret>,

    /// Key for the HTTP API (`/api/…`, `Authorization: Bearer KEY`), at
    /// least 16 bytes. Without one, the API answers only loopback callers
    /// (and 404 to everyone else). Prefer the environment: other users can
    /// read arguments.
    #[arg(long, env = "CHAT_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<crate::auth::ApiKey>,

    /// Open connections per client IP address, counted from accept
    /// (WebSocket, Socket.IO, any HTTP); more are answered 429 and closed
    /// [default: 0, no limit].
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// New TCP connections a second per client IP address, in bursts of
    /// twice that (at least 10); more are refused at accept, before TLS or
    /// HTTP, with a 429 on plain HTTP [default: 0, no limit].
    #[arg(long, env = "CHAT_MAX_CONNECTS_PER_IP_PER_SEC", value_name = "RATE")]
    pub max_connects_per_ip_per_sec: Option<f64>,

    /// Close a connection (1000 `idle timeout`) that sent no request other
    /// than `ping` for this long; receiving messages does not count
    /// [default: 0, never].
    #[arg(long, env = "CHAT_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,

    /// Keep at most this many latest messages per room; older ones are
    /// purged in the background (their seq is never reused) [default: 0, all].
    #[arg(long, env = "CHAT_RETENTION_MESSAGES", value_name = "N")]
    pub retention_messages: Option<u64>,

    /// Purge messages older than this many days (fractions allowed)
    /// [default: 0, keep forever].
    #[arg(long, env = "CHAT_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<f64>,

    /// How often the retention purge runs, in seconds [default: 60].
    #[arg(long, env = "CHAT_RETENTION_INTERVAL_SECS", value_name = "SECS")]
    pub retention_interval_secs: Option<u64>,

    /// How often the admin dashboard's history (`/api/admin/stats`, the
    /// last hour) takes a sample of this node's counters [default: 5000].
    #[arg(long, env = "CHAT_STATS_INTERVAL_MS", value_name = "MS")]
    pub stats_interval_ms: Option<u64>,
}

/// Fully resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL instead of SQLite when set.
    pub database_url: Option<String>,
    pub database_schema: Option<String>,
    /// Cluster mode (Redis broker) when set.
    pub redis: Option<crate::broker::RedisConfig>,
    pub heartbeat: Duration,
    pub max_frame_bytes: usize,
    pub limits: Limits,
    pub store_busy_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub allowed_origins: AllowedOrigins,
    /// Host names served, timeouts and caps before a request reaches a route.
    pub edge: EdgeConfig,
    /// Serve `/ws-echo` (conformance testing).
    pub ws_echo: bool,
    /// How often the dashboard's history takes a sample.
    pub stats_interval: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    /// `None`: made on first start and kept (see `--guest-secret`).
    pub guest_secret: Option<Secret>,
    /// `None`: the API serves loopback callers only.
    pub api_key: Option<crate::auth::ApiKey>,
    /// `None`: no per-address limit.
    pub max_connections_per_ip: Option<usize>,
    /// New connections a second per address; `None`: no limit.
    pub max_connects_per_ip_per_sec: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting `{name}`: {why}")]
    Invalid { name: &'static str, why: String },
}

/// Takes each field from `flags` when set there, else from `file`.
macro_rules! layer {
    ($flags:ident over $file:ident: $($field:ident),+ $(,)?) => {
        Settings { config: $flags.config, $($field: $flags.$field.or($file.$field)),+ }
    };
}

impl Config {
    /// Parses the process's flags and environment, and the file they name.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::resolve(Settings::parse())
    }

    /// Layers `flags` over the file they name (if any) over the defaults.
    pub fn resolve(flags: Settings) -> Result<Config, ConfigError> {
        let s = layered(flags)?;
        check_storage(&s)?;
        let heartbeat = heartbeat(&s)?;
        let listen = s.listen.unwrap_or(DEFAULT_LISTEN);
        Ok(Config {
            limits: limits(&s)?,
            api_key: api_key(&s)?,
            redis: cluster(&s, heartbeat)?,
            heartbeat,
            listen,
            edge: edge_config(&s, listen)?,
            max_frame_bytes: max_frame_bytes(&s)?,
            allowed_origins: allowed_origins(&s)?,
            max_connections_per_ip: s.max_connections_per_ip.filter(|&n| n > 0),
            max_connects_per_ip_per_sec: max_connects_per_ip_per_sec(&s)?,
            ws_echo: s.ws_echo.unwrap_or(false),
            store_busy_timeout: millis_or(s.store_busy_timeout_ms, DEFAULT_STORE_BUSY_TIMEOUT),
            shutdown_timeout: millis_or(s.shutdown_timeout_ms, DEFAULT_SHUTDOWN_TIMEOUT),
            tls: tls(&s)?,
            auth: auth_config(&s)?,
            guest_secret: guest_secret(&s)?,
            stats_interval: millis_at_least(
                10,
                "stats_interval_ms",
                s.stats_interval_ms,
                DEFAULT_STATS_INTERVAL,
            )?,
            log_format: s.log_format.unwrap_or(DEFAULT_LOG_FORMAT),
            // Last, the fields moved out of `s`, once nothing borrows it.
            log_level: s.log_level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.into()),
            data_dir: s.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            database_url: s.database_url,
            database_schema: s.database_schema,
        })
    }
}

/// `flags` over the file they name, if any.
fn layered(flags: Settings) -> Result<Settings, ConfigError> {
    let file = match &flags.config {
        Some(path) => read_file(path)?,
        None => Settings::default(),
    };
    Ok(layer!(flags over file:
        listen, data_dir, heartbeat_ms, max_frame_bytes, max_text_chars, max_room_chars,
        database_url, database_schema, redis_url, redis_prefix, node_ttl_ms,
        send_rate, send_burst, typing_rate, search_rate, max_errors_per_sec,
        max_rooms_per_connection,
        outbound_queue,
        max_pending_sends, commit_batch, commit_interval_ms, store_busy_timeout_ms,
        shutdown_timeout_ms,
        presence_delay_ms, allowed_origins, allowed_hosts, header_timeout_ms,
        body_timeout_ms, max_pending_connections, max_pending_connections_per_ip,
        ws_echo, log_format, log_level,
        tls_cert, tls_key, jwt_secret, jwt_secret_file, jwt_public_key, jwt_algorithm,
        jwt_audience, jwt_issuer, allow_anonymous, guest_secret,
        api_key, max_connections_per_ip, max_connects_per_ip_per_sec, idle_timeout_secs,
        retention_messages,
        retention_days, retention_interval_secs, stats_interval_ms,
    ))
}

/// What the core enforces per connection and node-wide.
fn limits(s: &Settings) -> Result<Limits, ConfigError> {
    let count = |name, value, default| at_least(1, name, value, default);
    Ok(Limits {
        max_text_chars: count("max_text_chars", s.max_text_chars, DEFAULT_MAX_TEXT_CHARS)?,
        max_room_chars: count("max_room_chars", s.max_room_chars, DEFAULT_MAX_ROOM_CHARS)?,
        send_rate: positive("send_rate", s.send_rate, DEFAULT_SEND_RATE)?,
        send_burst: positive("send_burst", s.send_burst, DEFAULT_SEND_BURST)?.max(1.0),
        typing_rate: positive("typing_rate", s.typing_rate, DEFAULT_TYPING_RATE)?,
        search_rate: positive("search_rate", s.search_rate, DEFAULT_SEARCH_RATE)?,
        error_rate: positive(
            "max_errors_per_sec",
            s.max_errors_per_sec,
            DEFAULT_ERROR_RATE,
        )?,
        max_rooms_per_connection: count(
            "max_rooms_per_connection",
            s.max_rooms_per_connection,
            DEFAULT_MAX_ROOMS_PER_CONNECTION,
        )?,
        outbound_queue: count("outbound_queue", s.outbound_queue, DEFAULT_OUTBOUND_QUEUE)?,
        max_pending_sends: count(
            "max_pending_sends",
            s.max_pending_sends,
            DEFAULT_MAX_PENDING_SENDS,
        )?,
        commit_batch: count("commit_batch", s.commit_batch, DEFAULT_COMMIT_BATCH)?,
        commit_interval: s
            .commit_interval_ms
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis),
        presence_delay: millis_or(s.presence_delay_ms, DEFAULT_PRESENCE_DELAY),
        idle_timeout: s
            .idle_timeout_secs
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs),
        retention: retention(
            s.retention_messages,
            s.retention_days,
            s.retention_interval_secs,
        )?,
    })
}

/// The HTTP API's key, long enough to resist guessing.
fn api_key(s: &Settings) -> Result<Option<crate::auth::ApiKey>, ConfigError> {
    if let Some(key) = &s.api_key
        && key.len() < crate::auth::MIN_KEY_BYTES
    {
        return Err(ConfigError::Invalid {
            name: "api_key",
            why: format!(
                "must be at least {} bytes (a random one: openssl rand -hex 32)",
                crate::auth::MIN_KEY_BYTES
            ),
        });
    }
    Ok(s.api_key.clone())
}

/// Storage: a schema only means something in PostgreSQL.
fn check_storage(s: &Settings) -> Result<(), ConfigError> {
    if s.database_schema.is_some() && s.database_url.is_none() {
        return Err(ConfigError::Invalid {
            name: "database_schema",
            why: "is a PostgreSQL schema and needs database_url".into(),
        });
    }
    Ok(())
}

/// Cluster mode: Redis, which needs shared (PostgreSQL) history; its other
/// settings need Redis. A node's lease defaults to the heartbeat.
fn cluster(
    s: &Settings,
    heartbeat: Duration,
) -> Result<Option<crate::broker::RedisConfig>, ConfigError> {
    let Some(url) = s.redis_url.clone() else {
        if s.redis_prefix.is_some() || s.node_ttl_ms.is_some() {
            return Err(ConfigError::Invalid {
                name: "redis_prefix",
                why: "redis_prefix and node_ttl_ms are cluster settings and need redis_url".into(),
            });
        }
        return Ok(None);
    };
    if s.database_url.is_none() {
        return Err(ConfigError::Invalid {
            name: "redis_url",
            why: "cluster mode needs database_url (PostgreSQL): SQLite history \
                  cannot be shared between nodes"
                .into(),
        });
    }
    Ok(Some(crate::broker::RedisConfig {
        url,
        prefix: s
            .redis_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into()),
        node_ttl: millis_at_least(30, "node_ttl_ms", s.node_ttl_ms, heartbeat)?,
    }))
}

/// The WebSocket ping interval.
fn heartbeat(s: &Settings) -> Result<Duration, ConfigError> {
    millis_at_least(10, "heartbeat_ms", s.heartbeat_ms, DEFAULT_HEARTBEAT)
}

/// The largest frame: it must at least hold a small request.
fn max_frame_bytes(s: &Settings) -> Result<usize, ConfigError> {
    at_least(
        256,
        "max_frame_bytes",
        s.max_frame_bytes,
        DEFAULT_MAX_FRAME_BYTES,
    )
}

/// The web pages allowed to connect.
fn allowed_origins(s: &Settings) -> Result<AllowedOrigins, ConfigError> {
    match &s.allowed_origins {
        Some(list) => AllowedOrigins::parse(list).map_err(|e| ConfigError::Invalid {
            name: "allowed_origins",
            why: e.to_string(),
        }),
        None => Ok(AllowedOrigins::default()),
    }
}

/// The accept rate per address; `0` (or nothing) is no limit.
fn max_connects_per_ip_per_sec(s: &Settings) -> Result<Option<f64>, ConfigError> {
    match s.max_connects_per_ip_per_sec {
        Some(rate) if !rate.is_finite() || rate < 0.0 => Err(ConfigError::Invalid {
            name: "max_connects_per_ip_per_sec",
            why: format!("{rate} is not a rate (0 for no limit)"),
        }),
        rate => Ok(rate.filter(|&r| r > 0.0)),
    }
}

/// TLS: both files or neither.
fn tls(s: &Settings) -> Result<Option<TlsConfig>, ConfigError> {
    match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None) => Ok(None),
        _ => Err(ConfigError::Invalid {
            name: "tls_cert",
            why: "--tls-cert and --tls-key go together: give both or neither".into(),
        }),
    }
}

/// The edge's settings: names served, how long a client may take to ask,
/// and how many may be waiting.
fn edge_config(s: &Settings, listen: SocketAddr) -> Result<EdgeConfig, ConfigError> {
    let millis = |name, value: Option<u64>, default: Duration| {
        let value = value.map_or(default, Duration::from_millis);
        if value < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                name,
                why: format!("must be at least 100 ms, got {value:?}"),
            });
        }
        Ok(value)
    };
    Ok(EdgeConfig {
        allowed_hosts: AllowedHosts::new(s.allowed_hosts.as_deref(), listen).map_err(|e| {
            ConfigError::Invalid {
                name: "allowed_hosts",
                why: e.to_string(),
            }
        })?,
        header_timeout: millis(
            "header_timeout_ms",
            s.header_timeout_ms,
            edge::DEFAULT_HEADER_TIMEOUT,
        )?,
        body_timeout: millis(
            "body_timeout_ms",
            s.body_timeout_ms,
            edge::DEFAULT_BODY_TIMEOUT,
        )?,
        max_pending: at_least(
            1,
            "max_pending_connections",
            s.max_pending_connections,
            edge::default_max_pending(),
        )?,
        max_pending_per_ip: at_least(
            1,
            "max_pending_connections_per_ip",
            s.max_pending_connections_per_ip,
            edge::DEFAULT_MAX_PENDING_PER_IP,
        )?,
    })
}

/// Who may connect: checks that the JWT settings make one key, and that
/// someone can connect at all.
fn auth_config(s: &Settings) -> Result<AuthConfig, ConfigError> {
    let key = jwt_key(s)?;
    let algorithm = jwt_algorithm(s)?;
    let allow_anonymous = s.allow_anonymous.unwrap_or(key.is_none());
    let Some(key) = key else {
        if !allow_anonymous {
            return Err(invalid(
                "allow_anonymous",
                "without a JWT key nobody could connect; set --jwt-secret, \
                 --jwt-secret-file or --jwt-public-key",
            ));
        }
        if algorithm.is_some() || s.jwt_audience.is_some() || s.jwt_issuer.is_some() {
            return Err(invalid(
                "jwt_algorithm",
                "--jwt-algorithm, --jwt-audience and --jwt-issuer need a JWT key",
            ));
        }
        return Ok(AuthConfig {
            jwt: None,
            allow_anonymous,
        });
    };
    Ok(AuthConfig {
        jwt: Some(JwtConfig {
            key,
            algorithm,
            audience: s.jwt_audience.clone(),
            issuer: s.jwt_issuer.clone(),
        }),
        allow_anonymous,
    })
}

/// `--guest-secret`, if given: long enough to sign with.
fn guest_secret(s: &Settings) -> Result<Option<Secret>, ConfigError> {
    let Some(secret) = &s.guest_secret else {
        return Ok(None);
    };
    crate::auth::GuestKeys::new(secret).map_err(|e| invalid("guest_secret", &e.to_string()))?;
    Ok(Some(secret.clone()))
}

/// The one JWT key given, if any.
fn jwt_key(s: &Settings) -> Result<Option<JwtKey>, ConfigError> {
    match (&s.jwt_secret, &s.jwt_secret_file, &s.jwt_public_key) {
        (None, None, None) => Ok(None),
        (Some(secret), None, None) => Ok(Some(JwtKey::Secret(secret.clone()))),
        (None, Some(path), None) => Ok(Some(JwtKey::SecretFile(path.clone()))),
        (None, None, Some(path)) => Ok(Some(JwtKey::PublicKey(path.clone()))),
        _ => Err(invalid(
            "jwt_secret",
            "give one of --jwt-secret, --jwt-secret-file and --jwt-public-key",
        )),
    }
}

/// The token algorithm named, if any.
fn jwt_algorithm(s: &Settings) -> Result<Option<jsonwebtoken::Algorithm>, ConfigError> {
    s.jwt_algorithm
        .as_deref()
        .map(|name| {
            name.parse().map_err(|_| ConfigError::Invalid {
                name: "jwt_algorithm",
                why: format!(
                    "unknown algorithm `{name}`; use HS256, HS384, HS512, RS256, RS384, \
                     RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                ),
            })
        })
        .transpose()
}

/// A refused setting and why.
fn invalid(name: &'static str, why: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        why: why.into(),
    }
}

/// The retention policy: `0` (or nothing) turns a bound off.
fn retention(
    messages: Option<u64>,
    days: Option<f64>,
    interval_secs: Option<u64>,
) -> Result<RetentionPolicy, ConfigError> {
    let max_age = match days {
        None | Some(0.0) => None,
        Some(d) if d.is_finite() && d > 0.0 && d < 1e6 => {
            Some(Duration::from_secs_f64(d * 86_400.0))
        }
        Some(d) => {
            return Err(ConfigError::Invalid {
                name: "retention_days",
                why: format!("must be a positive number of days, got {d}"),
            });
        }
    };
    Ok(RetentionPolicy {
        keep_last: messages.filter(|&n| n > 0),
        max_age,
        interval: Duration::from_secs(at_least(
            1,
            "retention_interval_secs",
            interval_secs.map(|s| usize::try_from(s).unwrap_or(usize::MAX)),
            PURGE_INTERVAL.as_secs() as usize,
        )? as u64),
    })
}

fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

fn at_least(
    min: usize,
    name: &'static str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    let value = value.unwrap_or(default);
    if value < min {
        return Err(ConfigError::Invalid {
            name,
            why: format!("must be at least {min}, got {value}"),
        });
    }
    Ok(value)
}

/// Milliseconds, as given or `default`.
fn millis_or(value: Option<u64>, default: Duration) -> Duration {
    value.map_or(default, Duration::from_millis)
}

/// Milliseconds, as given or `default`, of at least `min_ms`.
fn millis_at_least(
    min_ms: u64,
    name: &'static str,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or_else(|| u64::try_from(default.as_millis()).unwrap_or(u64::MAX));
    if value < min_ms {
        return Err(ConfigError::Invalid {
            name,
            why: format!("must be at least {min_ms}, got {value}"),
        });
    }
    Ok(Duration::from_millis(value))
}

fn positive(name: &'static str, value: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    let value = value.unwrap_or(default);
    if !(value.is_finite() && value > 0.0) {
        return Err(ConfigError::Invalid {
            name,
            why: format!("must be a positive number, got {value}"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Settings {
        Settings::try_parse_from(std::iter::once("chat-server").chain(args.iter().copied()))
            .expect("valid flags")
    }

    #[test]
    fn defaults_are_the_contracts() {
        let c = Config::resolve(parse(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.data_dir, PathBuf::from("chat-data"));
        assert_eq!(c.max_frame_bytes, 65536);
        assert_eq!(c.limits.max_text_chars, 4000);
        assert_eq!(c.limits.send_rate, 20.0);
        assert_eq!(c.limits.send_burst, 40.0);
        assert_eq!(c.limits.max_rooms_per_connection, 100);
        assert_eq!(c.heartbeat, Duration::from_secs(25));
        assert_eq!(c.database_url, None);
        assert_eq!(c.limits.idle_timeout, None);
        assert_eq!(c.limits.retention, RetentionPolicy::default());
        assert_eq!(
            (c.api_key.is_none(), c.max_connections_per_ip),
            (true, None)
        );
    }

    #[test]
    fn production_limits_from_flags() {
        let c = Config::resolve(parse(&[
            "--max-connections-per-ip",
            "3",
            "--max-connects-per-ip-per-sec",
            "2.5",
            "--idle-timeout-secs",
            "60",
            "--retention-messages",
            "1000",
            "--retention-days",
            "0.5",
            "--api-key",
            "0123456789abcdef",
        ]))
        .unwrap();
        assert_eq!(c.max_connections_per_ip, Some(3));
        assert_eq!(c.max_connects_per_ip_per_sec, Some(2.5));
        assert_eq!(c.limits.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.limits.retention.keep_last, Some(1000));
        assert_eq!(
            c.limits.retention.max_age,
            Some(Duration::from_secs(43_200))
        );
        assert!(!format!("{:?}", c.api_key).contains("0123"));
        for refused in [
            &["--api-key", "short"][..],
            &["--retention-days=-1"],
            &["--max-connects-per-ip-per-sec=-1"],
            &["--max-connects-per-ip-per-sec=inf"],
        ] {
            assert!(Config::resolve(parse(refused)).is_err(), "{refused:?}");
        }

        // The same settings from a TOML file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.toml");
        std::fs::write(
            &file,
            "api_key = \"from-the-file-0123456789\"\nmax_connections_per_ip = 50\n\
             max_connects_per_ip_per_sec = 0\nidle_timeout_secs = 600\nretention_days = 30.0\nretention_interval_secs = 5\n",
        )
        .unwrap();
        let c = Config::resolve(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(c.api_key.map(|k| k.len()), Some(24));
        assert_eq!(c.max_connections_per_ip, Some(50));
        assert_eq!(c.max_connects_per_ip_per_sec, None, "0 is no limit");
        assert_eq!(c.limits.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(
            c.limits.retention.max_age,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(c.limits.retention.interval, Duration::from_secs(5));
    }

    #[test]
    fn a_database_schema_needs_a_database_url() {
        let url = "postgres://chat@127.0.0.1:5432/chat";
        let c =
            Config::resolve(parse(&["--database-url", url, "--database-schema", "eu"])).unwrap();
        assert_eq!(c.database_url.as_deref(), Some(url));
        assert_eq!(c.database_schema.as_deref(), Some("eu"));
        let e = Config::resolve(parse(&["--database-schema", "eu"])).unwrap_err();
        assert!(e.to_string().contains("database_url"), "{e}");
    }

    #[test]
    fn tls_needs_both_files_and_jwt_one_key() {
        let c = Config::resolve(parse(&[])).unwrap();
        assert!(c.tls.is_none());
        assert!(c.auth.jwt.is_none() && c.auth.allow_anonymous);
        let c = Config::resolve(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])).unwrap();
        assert_eq!(c.tls.unwrap().key, PathBuf::from("k.pem"));
        let e = Config::resolve(parse(&["--tls-cert", "c.pem"])).unwrap_err();
        assert!(e.to_string().contains("both or neither"), "{e}");

        let c = Config::resolve(parse(&["--jwt-public-key", "p.pem"])).unwrap();
        assert!(
            !c.auth.allow_anonymous,
            "a key turns anonymous off by default"
        );
        let c = Config::resolve(parse(&[
            "--jwt-secret",
            "s3cret",
            "--jwt-algorithm",
            "HS512",
            "--allow-anonymous",
            "true",
        ]))
        .unwrap();
        assert!(c.auth.allow_anonymous);
        let jwt = c.auth.jwt.unwrap();
        assert_eq!(jwt.algorithm, Some(jsonwebtoken::Algorithm::HS512));
        assert!(
            !format!("{jwt:?}").contains("s3cret"),
            "the secret never prints"
        );

        for refused in [
            &["--jwt-secret", "s", "--jwt-public-key", "p.pem"][..],
            &["--jwt-secret", "s", "--jwt-algorithm", "none"],
            &["--allow-anonymous", "false"],
            &["--jwt-audience", "chat"],
        ] {
            assert!(Config::resolve(parse(refused)).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:4000\"\nsend_rate = 5.0\nlog_format = \"json\"\n",
        )
        .unwrap();
        let c = Config::resolve(parse(&[
            "--config",
            file.to_str().unwrap(),
            "--send-rate",
            "7",
        ]))
        .unwrap();
        assert_eq!(c.listen.port(), 4000);
        assert_eq!(c.limits.send_rate, 7.0);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_files_and_values_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.toml");
        std::fs::write(&file, "listn = \"x\"\n").unwrap();
        let e = Config::resolve(parse(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
        let e = Config::resolve(parse(&["--outbound-queue", "0"])).unwrap_err();
        assert!(e.to_string().contains("outbound_queue"), "{e}");
        let e = Config::resolve(parse(&["--allowed-origins", "localhost:5173"])).unwrap_err();
        assert!(e.to_string().contains("allowed_origins"), "{e}");
    }

    #[test]
    fn allowed_origins_from_flags_and_files() {
        let c = Config::resolve(parse(&[])).unwrap();
        assert_eq!(c.allowed_origins, AllowedOrigins::default());
        let c = Config::resolve(parse(&[
            "--allowed-origins",
            "https://app.example.com,http://localhost:*",
        ]))
        .unwrap();
        let want = AllowedOrigins::parse(&["https://app.example.com", "http://localhost:*"]);
        assert_eq!(Ok(c.allowed_origins), want);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.toml");
        std::fs::write(&file, "allowed_origins = [\"*\"]\n").unwrap();
        let c = Config::resolve(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(Ok(c.allowed_origins), AllowedOrigins::parse(&["*"]));
    }

    /// Each setting whose help gives its default as a value, with that
    /// value rendered from the constant the code uses.
    fn defaults_from_constants() -> Vec<(&'static str, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let (fewest_pending, most_pending) = edge::DEFAULT_MAX_PENDING_RANGE;
        let log_format = DEFAULT_LOG_FORMAT.to_possible_value().expect("not skipped");
        vec![
            ("listen", DEFAULT_LISTEN.to_string()),
            ("data-dir", format!("./{DEFAULT_DATA_DIR}")),
            ("redis-prefix", DEFAULT_REDIS_PREFIX.to_string()),
            ("heartbeat-ms", ms(DEFAULT_HEARTBEAT)),
            ("max-frame-bytes", DEFAULT_MAX_FRAME_BYTES.to_string()),
            ("max-text-chars", DEFAULT_MAX_TEXT_CHARS.to_string()),
            ("max-room-chars", DEFAULT_MAX_ROOM_CHARS.to_string()),
            ("send-rate", DEFAULT_SEND_RATE.to_string()),
            ("send-burst", DEFAULT_SEND_BURST.to_string()),
            ("typing-rate", DEFAULT_TYPING_RATE.to_string()),
            ("search-rate", DEFAULT_SEARCH_RATE.to_string()),
            ("max-errors-per-sec", DEFAULT_ERROR_RATE.to_string()),
            (
                "max-rooms-per-connection",
                DEFAULT_MAX_ROOMS_PER_CONNECTION.to_string(),
            ),
            ("outbound-queue", DEFAULT_OUTBOUND_QUEUE.to_string()),
            ("max-pending-sends", DEFAULT_MAX_PENDING_SENDS.to_string()),
            ("commit-batch", DEFAULT_COMMIT_BATCH.to_string()),
            ("store-busy-timeout-ms", ms(DEFAULT_STORE_BUSY_TIMEOUT)),
            ("shutdown-timeout-ms", ms(DEFAULT_SHUTDOWN_TIMEOUT)),
            ("presence-delay-ms", ms(DEFAULT_PRESENCE_DELAY)),
            ("header-timeout-ms", ms(edge::DEFAULT_HEADER_TIMEOUT)),
            ("body-timeout-ms", ms(edge::DEFAULT_BODY_TIMEOUT)),
            (
                "max-pending-connections",
                format!(
                    "a quarter of the process's file limit, {fewest_pending} to {most_pending}"
                ),
            ),
            (
                "max-pending-connections-per-ip",
                edge::DEFAULT_MAX_PENDING_PER_IP.to_string(),
            ),
            ("log-format", log_format.get_name().to_string()),
            ("log-level", DEFAULT_LOG_LEVEL.to_string()),
            (
                "retention-interval-secs",
                PURGE_INTERVAL.as_secs().to_string(),
            ),
            ("stats-interval-ms", ms(DEFAULT_STATS_INTERVAL)),
        ]
    }

    /// Settings whose help describes the default in words: it follows
    /// from other settings, or is `0` for off (`None` in [`Config`]).
    const DEFAULTS_IN_WORDS: [&str; 12] = [
        "database-schema",
        "node-ttl-ms",
        "allowed-origins",
        "allowed-hosts",
        "jwt-algorithm",
        "allow-anonymous",
        "max-connections-per-ip",
        "max-connects-per-ip-per-sec",
        "idle-timeout-secs",
        "commit-interval-ms",
        "retention-messages",
        "retention-days",
    ];

    /// The long help of each option as `--help` prints it, by flag name,
    /// its lines joined and its spaces collapsed so wrapping does not matter.
    fn long_help_by_flag() -> BTreeMap<String, String> {
        let help = Settings::command().render_long_help().to_string();
        let mut by_flag = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in help.lines() {
            let indent = line.len() - line.trim_start().len();
            let is_option = line.trim_start().starts_with('-') && indent <= 6;
            let is_heading = indent == 0 && !line.is_empty();
            if is_option || is_heading {
                by_flag.extend(current.take());
            }
            if is_option && let Some((_, long)) = line.split_once("--") {
                let flag = long.split_whitespace().next().unwrap_or_default();
                current = Some((flag.to_string(), String::new()));
            } else if let Some((_, text)) = &mut current {
                text.extend(line.split_whitespace().flat_map(|word| [" ", word]));
            }
        }
        by_flag.extend(current);
        by_flag
    }

    #[test]
    fn the_help_shows_the_defaults_the_code_uses() {
        let help = long_help_by_flag();
        let from_constants = defaults_from_constants();
        for (flag, default) in &from_constants {
            let text = help
                .get(*flag)
                .unwrap_or_else(|| panic!("--{flag} has no help"));
            let shown = format!("[default: {default}]");
            assert!(text.contains(&shown), "--{flag} should show {shown}:{text}");
        }
        // Every default the help shows is checked above or listed as
        // described in words, so a new setting cannot slip past.
        let shown: BTreeSet<&str> = help
            .iter()
            .filter(|(_, text)| text.contains("[default: "))
            .map(|(flag, _)| flag.as_str())
            .collect();
        let classified: BTreeSet<&str> = from_constants
            .iter()
            .map(|(flag, _)| *flag)
            .chain(DEFAULTS_IN_WORDS)
            .collect();
        assert_eq!(shown, classified);
    }
}
