//! Configuration from flags, `CHAT_*` environment variables and an optional
//! TOML file, in that order of precedence.
//!
//! One struct, [`Settings`], is both the clap parser and the file schema, so
//! a setting cannot exist in one place and be missing from the other. Every
//! field is optional there; [`Config::resolve`] layers flags over the file
//! and fills in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use crate::auth::{AuthConfig, JwtConfig, JwtKey, Secret};
use crate::core::{Limits, RetentionPolicy};
use crate::edge::hosts::AllowedHosts;
use crate::edge::origin::AllowedOrigins;
use crate::edge::{self, EdgeConfig};
use crate::tls::TlsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

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

    /// Key for the HTTP API (`/api/…`, `Authorization: Bearer KEY`), at
    /// least 16 bytes. Without one, the API answers only loopback callers
    /// (and 404 to everyone else). Prefer the environment: other users can
    /// read arguments.
    #[arg(long, env = "CHAT_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<crate::api::ApiKey>,

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
    pub log_format: LogFormat,
    pub log_level: String,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    /// `None`: the API serves loopback callers only.
    pub api_key: Option<crate::api::ApiKey>,
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
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        let s = layer!(flags over file:
            listen, data_dir, heartbeat_ms, max_frame_bytes, max_text_chars, max_room_chars,
            database_url, database_schema, redis_url, redis_prefix, node_ttl_ms,
            send_rate, send_burst, typing_rate, max_errors_per_sec, max_rooms_per_connection,
            outbound_queue,
            max_pending_sends, commit_batch, store_busy_timeout_ms, shutdown_timeout_ms,
            presence_delay_ms, allowed_origins, allowed_hosts, header_timeout_ms,
            body_timeout_ms, max_pending_connections, max_pending_connections_per_ip,
            ws_echo, log_format, log_level,
            tls_cert, tls_key, jwt_secret, jwt_secret_file, jwt_public_key, jwt_algorithm,
            jwt_audience, jwt_issuer, allow_anonymous,
            api_key, max_connections_per_ip, max_connects_per_ip_per_sec, idle_timeout_secs,
            retention_messages,
            retention_days, retention_interval_secs,
        );
        let defaults = Limits::default();
        let limits = Limits {
            max_text_chars: at_least(
                1,
                "max_text_chars",
                s.max_text_chars,
                defaults.max_text_chars,
            )?,
            max_room_chars: at_least(
                1,
                "max_room_chars",
                s.max_room_chars,
                defaults.max_room_chars,
            )?,
            send_rate: positive("send_rate", s.send_rate, defaults.send_rate)?,
            send_burst: positive("send_burst", s.send_burst, defaults.send_burst)?.max(1.0),
            typing_rate: positive("typing_rate", s.typing_rate, defaults.typing_rate)?,
            error_rate: positive(
                "max_errors_per_sec",
                s.max_errors_per_sec,
                defaults.error_rate,
            )?,
            max_rooms_per_connection: at_least(
                1,
                "max_rooms_per_connection",
                s.max_rooms_per_connection,
                defaults.max_rooms_per_connection,
            )?,
            outbound_queue: at_least(
                1,
                "outbound_queue",
                s.outbound_queue,
                defaults.outbound_queue,
            )?,
            max_pending_sends: at_least(
                1,
                "max_pending_sends",
                s.max_pending_sends,
                defaults.max_pending_sends,
            )?,
            commit_batch: at_least(1, "commit_batch", s.commit_batch, defaults.commit_batch)?,
            presence_delay: s
                .presence_delay_ms
                .map_or(defaults.presence_delay, Duration::from_millis),
            idle_timeout: s
                .idle_timeout_secs
                .filter(|&secs| secs > 0)
                .map(Duration::from_secs),
            retention: retention(
                s.retention_messages,
                s.retention_days,
                s.retention_interval_secs,
            )?,
        };
        if let Some(key) = &s.api_key
            && key.len() < crate::api::MIN_KEY_BYTES
        {
            return Err(ConfigError::Invalid {
                name: "api_key",
                why: format!(
                    "must be at least {} bytes (a random one: openssl rand -hex 32)",
                    crate::api::MIN_KEY_BYTES
                ),
            });
        }
        if s.database_schema.is_some() && s.database_url.is_none() {
            return Err(ConfigError::Invalid {
                name: "database_schema",
                why: "is a PostgreSQL schema and needs database_url".into(),
            });
        }
        if s.redis_url.is_some() && s.database_url.is_none() {
            return Err(ConfigError::Invalid {
                name: "redis_url",
                why: "cluster mode needs database_url (PostgreSQL): SQLite history \
                      cannot be shared between nodes"
                    .into(),
            });
        }
        if s.redis_url.is_none() && (s.redis_prefix.is_some() || s.node_ttl_ms.is_some()) {
            return Err(ConfigError::Invalid {
                name: "redis_prefix",
                why: "redis_prefix and node_ttl_ms are cluster settings and need redis_url".into(),
            });
        }
        let heartbeat_ms = at_least(
            10,
            "heartbeat_ms",
            s.heartbeat_ms.map(|v| v as usize),
            25_000,
        )?;
        let listen = s.listen.unwrap_or_else(|| ([127, 0, 0, 1], 3000).into());
        Ok(Config {
            listen,
            edge: edge_config(&s, listen)?,
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from("chat-data")),
            database_url: s.database_url,
            database_schema: s.database_schema,
            redis: match s.redis_url {
                Some(url) => Some(crate::broker::RedisConfig {
                    url,
                    prefix: s.redis_prefix.unwrap_or_else(|| "chat:".into()),
                    node_ttl: Duration::from_millis(at_least(
                        30,
                        "node_ttl_ms",
                        s.node_ttl_ms.map(|v| v as usize),
                        heartbeat_ms,
                    )? as u64),
                }),
                None => None,
            },
            heartbeat: Duration::from_millis(heartbeat_ms as u64),
            // A frame must at least hold a small request.
            max_frame_bytes: at_least(256, "max_frame_bytes", s.max_frame_bytes, 64 * 1024)?,
            limits,
            store_busy_timeout: Duration::from_millis(s.store_busy_timeout_ms.unwrap_or(5000)),
            shutdown_timeout: Duration::from_millis(s.shutdown_timeout_ms.unwrap_or(5000)),
            allowed_origins: match &s.allowed_origins {
                Some(list) => AllowedOrigins::parse(list).map_err(|e| ConfigError::Invalid {
                    name: "allowed_origins",
                    why: e.to_string(),
                })?,
                None => AllowedOrigins::default(),
            },
            ws_echo: s.ws_echo.unwrap_or(false),
            log_format: s.log_format.unwrap_or(LogFormat::Text),
            log_level: s.log_level.unwrap_or_else(|| "info".into()),
            tls: match (s.tls_cert, s.tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "tls_cert",
                        why: "--tls-cert and --tls-key go together: give both or neither".into(),
                    });
                }
            },
            api_key: s.api_key,
            max_connections_per_ip: s.max_connections_per_ip.filter(|&n| n > 0),
            max_connects_per_ip_per_sec: match s.max_connects_per_ip_per_sec {
                Some(rate) if !rate.is_finite() || rate < 0.0 => {
                    return Err(ConfigError::Invalid {
                        name: "max_connects_per_ip_per_sec",
                        why: format!("{rate} is not a rate (0 for no limit)"),
                    });
                }
                rate => rate.filter(|&r| r > 0.0),
            },
            auth: auth_config(
                s.jwt_secret,
                s.jwt_secret_file,
                s.jwt_public_key,
                s.jwt_algorithm,
                s.jwt_audience,
                s.jwt_issuer,
                s.allow_anonymous,
            )?,
        })
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
fn auth_config(
    secret: Option<Secret>,
    secret_file: Option<PathBuf>,
    public_key: Option<PathBuf>,
    algorithm: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
    allow_anonymous: Option<bool>,
) -> Result<AuthConfig, ConfigError> {
    let invalid = |name, why: &str| ConfigError::Invalid {
        name,
        why: why.into(),
    };
    let key = match (secret, secret_file, public_key) {
        (None, None, None) => None,
        (Some(secret), None, None) => Some(JwtKey::Secret(secret)),
        (None, Some(path), None) => Some(JwtKey::SecretFile(path)),
        (None, None, Some(path)) => Some(JwtKey::PublicKey(path)),
        _ => {
            return Err(invalid(
                "jwt_secret",
                "give one of --jwt-secret, --jwt-secret-file and --jwt-public-key",
            ));
        }
    };
    let algorithm = algorithm
        .map(|name| {
            name.parse().map_err(|_| ConfigError::Invalid {
                name: "jwt_algorithm",
                why: format!(
                    "unknown algorithm `{name}`; use HS256, HS384, HS512, RS256, RS384, \
                     RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                ),
            })
        })
        .transpose()?;
    let allow_anonymous = allow_anonymous.unwrap_or(key.is_none());
    let Some(key) = key else {
        if !allow_anonymous {
            return Err(invalid(
                "allow_anonymous",
                "without a JWT key nobody could connect; set --jwt-secret, \
                 --jwt-secret-file or --jwt-public-key",
            ));
        }
        if algorithm.is_some() || audience.is_some() || issuer.is_some() {
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
            audience,
            issuer,
        }),
        allow_anonymous,
    })
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
    let defaults = RetentionPolicy::default();
    Ok(RetentionPolicy {
        keep_last: messages.filter(|&n| n > 0),
        max_age,
        interval: Duration::from_secs(at_least(
            1,
            "retention_interval_secs",
            interval_secs.map(|s| usize::try_from(s).unwrap_or(usize::MAX)),
            defaults.interval.as_secs() as usize,
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
}
