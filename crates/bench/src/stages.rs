//! The server's own account of where a message's time goes: its stage
//! histograms on `/metrics` (`chat_*_seconds`: queued before the commit, the
//! commit and its durable step, the publish, the wait in a member's outbox),
//! read at both ends of a measured window. The bench's end-to-end latency
//! says how long; these say which stage a tail comes from.
//!
//! Each figure is a bucket bound ("at most"), as fine as the server's
//! buckets (0.1 ms to 2.5 s). A server without these metrics (every peer)
//! gives none, and the report leaves the rows out.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Table;

/// The stages, in a message's order: metric name and what it measures.
pub const STAGES: &[(&str, &str)] = &[
    ("chat_send_queued_seconds", "queued for commit"),
    ("chat_commit_seconds", "commit"),
    ("chat_commit_sync_seconds", "  durable step"),
    ("chat_publish_seconds", "commit to published"),
    ("chat_outbox_wait_seconds", "outbox wait"),
    ("chat_ack_latency_seconds", "ack (server)"),
];

/// Longest a scrape may take; a slower one is skipped, not waited for.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest `/metrics` answer read.
const MAX_RESPONSE: u64 = 4 << 20;

/// Each stage histogram's cumulative bucket counts at one moment, by
/// metric name: (upper bound in seconds, samples at or below it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot(BTreeMap<String, Vec<(f64, u64)>>);

/// One stage over a window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageReport {
    pub metric: &'static str,
    pub samples: u64,
    /// Bucket bounds in milliseconds that hold at least 50 %, 99 % and
    /// 99.9 % of the window's samples, and all of them; `None`: above the
    /// largest bound. The last shows a rare stall (a slow fsync, say) that
    /// the quantiles of a stage with few samples hide, yet which holds up
    /// every delivery queued behind it.
    pub p50_ms_at_most: Option<f64>,
    pub p99_ms_at_most: Option<f64>,
    pub p999_ms_at_most: Option<f64>,
    pub max_ms_at_most: Option<f64>,
}

/// Reads the stage histograms of the server behind `url` (`ws://host:port/…`);
/// `None` for a server that has none, cannot be reached, or is behind TLS.
pub async fn scrape(url: &str) -> Option<Snapshot> {
    let authority = url.strip_prefix("ws://")?.split('/').next()?;
    let body = fetch_metrics(authority).await?;
    let snapshot = parse(&body);
    (!snapshot.0.is_empty()).then_some(snapshot)
}

/// The body of `GET http://AUTHORITY/metrics` (plain HTTP only); `None`
/// when it cannot be had within [`SCRAPE_TIMEOUT`].
pub async fn fetch_metrics(authority: &str) -> Option<String> {
    tokio::time::timeout(SCRAPE_TIMEOUT, get_metrics(authority))
        .await
        .ok()?
}

/// The value of the unlabelled metric `name` in a Prometheus text
/// exposition.
pub fn gauge(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

async fn get_metrics(authority: &str) -> Option<String> {
    let mut stream = TcpStream::connect(authority).await.ok()?;
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .await
        .ok()?;
    let response = String::from_utf8(response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The stage histograms' buckets in a Prometheus text exposition.
pub fn parse(exposition: &str) -> Snapshot {
    let mut histograms: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
    for line in exposition.lines() {
        let Some((name, rest)) = line.split_once("_bucket{le=\"") else {
            continue;
        };
        if !STAGES.iter().any(|(stage, _)| *stage == name) {
            continue;
        }
        let Some((bound, count)) = rest.split_once("\"} ") else {
            continue;
        };
        let bound = if bound == "+Inf" {
            f64::INFINITY
        } else {
            match bound.parse() {
                Ok(bound) => bound,
                Err(_) => continue,
            }
        };
        if let Ok(count) = count.trim().parse::<f64>() {
            histograms
                .entry(name.to_owned())
                .or_default()
                .push((bound, count as u64));
        }
    }
    for buckets in histograms.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Snapshot(histograms)
}

/// Each stage's samples between two snapshots, in [`STAGES`] order.
pub fn between(before: &Snapshot, after: &Snapshot) -> Vec<StageReport> {
    STAGES
        .iter()
        .filter_map(|(metric, _)| {
            let now = after.0.get(*metric)?;
            let then = before.0.get(*metric);
            let window: Vec<(f64, u64)> = now
                .iter()
                .map(|&(bound, count)| {
                    let earlier = then
                        .and_then(|t| t.iter().find(|(b, _)| *b == bound))
                        .map_or(0, |&(_, c)| c);
                    (bound, count.saturating_sub(earlier))
                })
                .collect();
            let samples = window.last().map_or(0, |&(_, c)| c);
            let at_most = |q: f64| quantile_bound(&window, samples, q);
            Some(StageReport {
                metric,
                samples,
                p50_ms_at_most: at_most(0.5),
                p99_ms_at_most: at_most(0.99),
                p999_ms_at_most: at_most(0.999),
                max_ms_at_most: at_most(1.0),
            })
        })
        .collect()
}

/// The smallest bound (ms) whose cumulative count reaches `q` of `total`.
fn quantile_bound(window: &[(f64, u64)], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let needed = (q * total as f64).ceil() as u64;
    window
        .iter()
        .find(|&&(_, count)| count >= needed)
        .and_then(|&(bound, _)| bound.is_finite().then_some(bound * 1000.0))
}

/// Rows of the human table, one per stage with samples.
pub fn rows(stages: &[StageReport], t: &mut Table) {
    let at_most = |ms: Option<f64>| ms.map_or_else(|| "> 2500".to_owned(), |ms| format!("{ms}"));
    for stage in stages.iter().filter(|s| s.samples > 0) {
        let what = STAGES
            .iter()
            .find(|(metric, _)| *metric == stage.metric)
            .map_or(stage.metric, |(_, what)| what);
        t.row(
            &format!("stage: {what}"),
            format!(
                "p50 <= {} ms, p99 <= {} ms, p99.9 <= {} ms, max <= {} ms ({} samples)",
                at_most(stage.p50_ms_at_most),
                at_most(stage.p99_ms_at_most),
                at_most(stage.p999_ms_at_most),
                at_most(stage.max_ms_at_most),
                stage.samples
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_is_read_by_its_exact_name() {
        let text = "# TYPE chat_runtime_alive_tasks gauge\nchat_runtime_alive_tasks_other 9\n\
                    chat_runtime_alive_tasks 1234\nchat_rooms 3\n";
        assert_eq!(gauge(text, "chat_runtime_alive_tasks"), Some(1234.0));
        assert_eq!(gauge(text, "chat_rooms"), Some(3.0));
        assert_eq!(gauge(text, "chat_connections"), None);
    }

    fn exposition(commit: [u64; 4]) -> String {
        format!(
            "# TYPE chat_commit_seconds histogram\n\
             chat_commit_seconds_bucket{{le=\"0.001\"}} {}\n\
             chat_commit_seconds_bucket{{le=\"0.01\"}} {}\n\
             chat_commit_seconds_bucket{{le=\"0.1\"}} {}\n\
             chat_commit_seconds_bucket{{le=\"+Inf\"}} {}\n\
             chat_commit_seconds_sum 1.5\n\
             chat_commit_seconds_count {}\n\
             chat_rooms 3\n\
             other_seconds_bucket{{le=\"0.001\"}} 9\n",
            commit[0], commit[1], commit[2], commit[3], commit[3]
        )
    }

    #[test]
    fn reads_only_the_stage_histograms() {
        let snapshot = parse(&exposition([1, 2, 3, 4]));
        assert_eq!(snapshot.0.len(), 1);
        assert_eq!(
            snapshot.0["chat_commit_seconds"],
            [(0.001, 1), (0.01, 2), (0.1, 3), (f64::INFINITY, 4)]
        );
    }

    #[test]
    fn quantiles_come_from_the_window_only() {
        // Before the window: 100 fast commits. In it: 990 more under 1 ms,
        // 9 under 10 ms and one above every bound.
        let before = parse(&exposition([100, 100, 100, 100]));
        let after = parse(&exposition([1090, 1099, 1099, 1100]));
        let stages = between(&before, &after);
        assert_eq!(
            stages,
            [StageReport {
                metric: "chat_commit_seconds",
                samples: 1000,
                p50_ms_at_most: Some(1.0),
                p99_ms_at_most: Some(1.0),
                p999_ms_at_most: Some(10.0),
                max_ms_at_most: None,
            }]
        );
        let tail = between(&before, &parse(&exposition([1000, 1000, 1000, 1100])));
        assert_eq!(tail[0].p999_ms_at_most, None, "above every bound");
        assert_eq!(tail[0].p99_ms_at_most, None);
        assert_eq!(tail[0].p50_ms_at_most, Some(1.0));
        let no_outlier = between(&before, &parse(&exposition([1090, 1100, 1100, 1100])));
        assert_eq!(no_outlier[0].max_ms_at_most, Some(10.0));
    }

    #[test]
    fn an_empty_window_has_no_quantiles() {
        let same = parse(&exposition([5, 5, 5, 5]));
        let stages = between(&same, &same);
        assert_eq!(stages[0].samples, 0);
        assert_eq!(stages[0].p50_ms_at_most, None);
    }
}
