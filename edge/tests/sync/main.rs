//! The real `edge` binary against stand-in control planes ([`standin`]) speaking the real sync
//! protocol: warm start from the cache file, damaged caches, a stale cache superseded by the
//! stream, resuming `since` the cached version, and moving between control planes; and the
//! edge for client apps — OFREP, event streams, read-your-writes and bad input on all of them.

#![allow(clippy::unwrap_used)] // test helpers panic with context on purpose

mod bad_input;
mod compat;
mod connections;
mod failover;
mod ofrep;
mod read_your_writes;
mod standin;
mod streams;
mod tls;
mod warm_start;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KEY: &str = "pk_test_standinKey000000000000001";

/// An `edge` process, killed on drop, with its output kept.
pub struct Edge {
    child: Child,
    pub url: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl Edge {
    /// Starts the edge on a free port against `urls` (comma-separated), caching in `cache`.
    pub fn start(urls: &str, cache: Option<&Path>) -> Edge {
        Edge::start_with(urls, cache, &[])
    }

    /// [`Edge::start`] with more flags.
    pub fn start_with(urls: &str, cache: Option<&Path>, extra: &[&str]) -> Edge {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge"));
        cmd.args(extra);
        cmd.args(["--listen", "127.0.0.1:0", "--sync-key", standin::SYNC_KEY])
            .args(["--control-plane-url", urls])
            .args(["--backoff-max-ms", "200", "--idle-timeout-ms", "2000"])
            .args(["--cache-interval-secs", "1"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(dir) = cache {
            cmd.arg("--cache-dir").arg(dir);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("edge listening");
        Edge { child, url, output }
    }

    /// Whether the edge has printed a line containing `needle`.
    pub fn said(&self, needle: &str) -> bool {
        self.output
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, String, Vec<u8>) {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        (status, etag, resp.bytes().await.unwrap().to_vec())
    }

    pub async fn entitlements(&self, customer: &str) -> (u16, String, Vec<u8>) {
        self.get(
            &format!("/api/v1/entitlements/?customerId={customer}"),
            Some(KEY),
        )
        .await
    }

    pub async fn ready(&self) -> (u16, Value) {
        let (status, _, body) = self.get("/readyz", None).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        String::from_utf8(self.get("/metrics", None).await.2).unwrap()
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until `check` holds. The deadline only stops a broken test from hanging.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A port nothing listens on: bind, note it, close.
pub fn dead_url() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}")
}

pub fn current_usage(body: &[u8]) -> i64 {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["entitlements"][0]["currentUsage"].as_i64().unwrap()
}

impl Edge {
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// Whether the process is still running (no panic took it down).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `POST` `body` to `path` with `key` (as `Authorization: Bearer`).
    pub async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, v)
    }

    /// A value from `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Opens an event stream at `path` (with `Authorization: Bearer key` when given).
    pub async fn stream(&self, path: &str, key: Option<&str>, headers: &[(&str, &str)]) -> Sse {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        Sse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            resp: Some(resp),
            buf: Vec::new(),
        }
    }
}

/// One server-sent event: `id`, `event`, `data` (`None`: an `id:`-only event), and whether
/// it was a comment (heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub comment: bool,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().unwrap_or("null")).unwrap()
    }

    pub fn version(&self) -> u64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }
}

/// A client of an event stream, parsing blocks as the WHATWG parser does (enough for tests).
pub struct Sse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    resp: Option<reqwest::Response>,
    buf: Vec<u8>,
}

impl Sse {
    /// The next block (`None`: the stream ended). Waits at most 30 s, to stop a broken test.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(block).unwrap();
                let mut ev = Event {
                    id: None,
                    event: None,
                    data: None,
                    comment: false,
                };
                let mut only_comments = true;
                for line in text.lines().filter(|l| !l.is_empty()) {
                    if line.starts_with(':') {
                        continue;
                    }
                    only_comments = false;
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "id" => ev.id = Some(value),
                        "event" => ev.event = Some(value),
                        "data" => ev.data = Some(value),
                        _ => {}
                    }
                }
                ev.comment = only_comments;
                return Some(ev);
            }
            let resp = self.resp.as_mut()?;
            match tokio::time::timeout(Duration::from_secs(30), resp.chunk()).await {
                Err(_) => panic!("no event within 30 s"),
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
                Ok(_) => {
                    self.resp = None;
                    return None;
                }
            }
        }
    }

    /// The next event that is not a heartbeat and not `retry:`-only.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            let ev = self.next().await?;
            if !ev.comment && (ev.id.is_some() || ev.data.is_some()) {
                return Some(ev);
            }
        }
    }

    /// The next event with data (skipping heartbeats and `id:`-only events).
    pub async fn next_data(&mut self) -> Option<Event> {
        loop {
            let ev = self.next_event().await?;
            if ev.data.is_some() {
                return Some(ev);
            }
        }
    }
}
