//! A cluster the bench runs itself, for `chat-bench rolling`: `chat-server`
//! nodes on one PostgreSQL schema and one Redis prefix, behind nginx with
//! the configuration of docs/deploy.md (`docs/nginx-cluster.conf`, with
//! this run's ports), run unprivileged from a temporary prefix as
//! crates/server/tests/cluster.rs runs it.
//!
//! Each node keeps its port across restarts (nginx's upstream list names
//! it), and may be started again from another binary (an upgrade). Node
//! logs go to `node-N.log` in the run's directory; nginx's to `nginx.log`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The documented nginx configuration, rendered with this run's ports.
const NGINX_TEMPLATE: &str = include_str!("../../../docs/nginx-cluster.conf");

/// The line `chat-server` prints once it listens.
const LISTENING: &str = "chat-server listening on ";

/// How long a node may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What every node of the run shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub database_url: String,
    pub database_schema: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub shutdown_timeout: Duration,
    /// The run's temporary directory: data dirs and logs.
    pub dir: PathBuf,
}

/// One `chat-server` process, restartable on its port.
pub struct Node {
    pub index: usize,
    pub addr: SocketAddr,
    child: Option<Child>,
}

/// A free port on 127.0.0.1 (bound and released; the node binds it next).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Node {
    /// Starts node `index` from `binary` on a free port.
    pub async fn start(index: usize, binary: &Path, shared: &Shared) -> anyhow::Result<Node> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut node = Node {
            index,
            addr,
            child: None,
        };
        node.spawn(binary, shared).await?;
        Ok(node)
    }

    /// Starts the process (again) from `binary`, and waits for its
    /// listening line.
    pub async fn spawn(&mut self, binary: &Path, shared: &Shared) -> anyhow::Result<()> {
        let log_path = shared.dir.join(format!("node-{}.log", self.index));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let data_dir = shared.dir.join(format!("node-{}", self.index));
        let mut child = Command::new(binary)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--database-url", &shared.database_url])
            .args(["--database-schema", &shared.database_schema])
            .args(["--redis-url", &shared.redis_url])
            .args(["--redis-prefix", &shared.redis_prefix])
            .arg("--shutdown-timeout-ms")
            .arg(shared.shutdown_timeout.as_millis().to_string())
            // The bench's clients send at a steady, modest rate; the
            // per-connection limit is not what this measures.
            .args(["--send-rate", "1000", "--send-burst", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with(LISTENING) {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        if !matches!(listening, Ok(Ok(true))) {
            let _ = child.kill().await;
            bail!(
                "node {} did not start (see {})",
                self.index,
                log_path.display()
            );
        }
        self.child = Some(child);
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Sends SIGTERM (the drain) to the process.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("the node is not running")?;
        let pid = libc::pid_t::try_from(pid)?;
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("kill -TERM {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for the process to exit; its status code (`None`: a signal).
    pub async fn exited(&mut self) -> anyhow::Result<Option<i32>> {
        let mut child = self.child.take().context("the node is not running")?;
        Ok(child.wait().await?.code())
    }

    /// Polls `GET /readyz` until it answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http(self.addr, "GET", "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {} not ready within {timeout:?}", self.index);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`: the status and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let body = if method == "POST" {
        "Content-Type: application/json\r\nContent-Length: 0\r\n"
    } else {
        ""
    };
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{body}\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("a malformed answer")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an answer without a status")?;
    Ok((status, body.to_owned()))
}

/// nginx in front of the nodes, in the foreground, from a temp prefix.
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
}

impl Nginx {
    /// Renders docs/nginx-cluster.conf for `nodes` (three, as the file
    /// has) and starts `nginx`.
    pub async fn start(nginx: &str, nodes: &[SocketAddr], dir: &Path) -> anyhow::Result<Nginx> {
        let port = free_port()?;
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp"))?;
        std::fs::create_dir_all(prefix.join("logs"))?;
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, render_nginx_conf(port, nodes))?;
        let log = std::fs::File::create(dir.join("nginx.log"))?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off; pid nginx.pid; error_log stderr notice;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {nginx} (is nginx installed?)"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on {addr} (see {})",
                    dir.join("nginx.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Nginx { addr, child })
    }

    /// Stops nginx with SIGTERM (its master then stops the workers).
    pub async fn stop(mut self) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
        {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// docs/nginx-cluster.conf with `listen` on `port` and the upstream
/// servers replaced by `nodes`; temp files and logs in the prefix, so
/// nginx needs no system directory.
pub fn render_nginx_conf(port: u16, nodes: &[SocketAddr]) -> String {
    let mut conf = NGINX_TEMPLATE.replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
    for (i, node) in nodes.iter().enumerate() {
        conf = conf.replace(&format!("127.0.0.1:300{}", i + 1), &node.to_string());
    }
    conf.replace(
        "http {",
        "http {\n    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n    \
         fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    \
         scgi_temp_path tmp/scgi;\n    access_log off;\n",
    )
}
