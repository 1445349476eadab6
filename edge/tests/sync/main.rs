//! The real `edge` binary against stand-in control planes ([`standin`]) speaking the real sync
//! protocol: warm start from the cache file, damaged caches, a stale cache superseded by the
//! stream, resuming `since` the cached version, and moving between control planes.

#![allow(clippy::unwrap_used)] // test helpers panic with context on purpose

mod compat;
mod connections;
mod failover;
mod standin;
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
