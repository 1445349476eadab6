//! Event-stream subscribers for `loadtest edge-apps`: each one a keep-alive HTTP/1 connection
//! reading `GET /api/v1/entitlements/stream`, recording when each event arrived (by its id,
//! the version) into one shared log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// `(version, when it arrived)` of every data event every subscriber received.
pub type Log = Arc<Mutex<Vec<(u64, Instant)>>>;

pub struct Subscribers {
    tasks: JoinSet<()>,
    pub log: Log,
    pub count: usize,
}

/// The versions of the complete data events in `block`s, and what is left for the next chunk.
fn events(buf: &mut Vec<u8>, chunk: &[u8], mut each: impl FnMut(u64)) {
    buf.extend_from_slice(chunk);
    let mut start = 0;
    while let Some(end) = memchr::memmem::find(&buf[start..], b"\n\n") {
        let block = &buf[start..start + end];
        let mut id = None;
        let mut data = false;
        for line in block.split(|b| *b == b'\n') {
            if let Some(v) = line.strip_prefix(b"id: ") {
                id = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
            } else if line.starts_with(b"data:") {
                data = true;
            }
        }
        if let (Some(v), true) = (id, data) {
            each(v);
        }
        start += end + 2;
    }
    buf.drain(..start);
}

async fn one(
    addr: String,
    path: String,
    key: HeaderValue,
    log: Log,
    mut first: Option<tokio::sync::oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = path.parse()?;
    req.headers_mut()
        .insert(HOST, HeaderValue::from_str(&addr).context("host")?);
    req.headers_mut().insert(AUTHORIZATION, key);
    let resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::OK {
        bail!("the stream answered {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        let at = Instant::now();
        let mut seen = Vec::new();
        events(&mut buf, chunk, |v| seen.push((v, at)));
        if !seen.is_empty() {
            if let Ok(mut l) = log.lock() {
                l.extend(seen);
            }
            if let Some(tell) = first.take() {
                let _ = tell.send(());
            }
        }
    }
    Ok(())
}

impl Subscribers {
    /// Opens `n` streams for `customer(i)`, at most `parallel` connecting at once, and waits
    /// until each has received its first event.
    pub async fn open(
        addr: &str,
        key: &str,
        n: usize,
        customer: impl Fn(usize) -> String,
        parallel: usize,
    ) -> anyhow::Result<Subscribers> {
        let log: Log = Arc::new(Mutex::new(Vec::with_capacity(n * 4)));
        let key = HeaderValue::from_str(&format!("Bearer {key}"))?;
        let mut tasks = JoinSet::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        for i in 0..n {
            let path = format!("/api/v1/entitlements/stream?customerId={}", customer(i));
            let (addr, key, log, gate) = (addr.to_owned(), key.clone(), log.clone(), gate.clone());
            tasks.spawn(async move {
                let permit = gate.acquire_owned().await;
                let (tell, told) = tokio::sync::oneshot::channel();
                let run = one(addr, path, key, log, Some(tell));
                tokio::pin!(run);
                // Hold the permit until this stream's first event arrived (or it failed).
                tokio::select! {
                    r = &mut run => {
                        if let Err(e) = r {
                            eprintln!("subscriber {i}: {e:#}");
                        }
                        return;
                    }
                    _ = told => {}
                }
                drop(permit);
                if let Err(e) = run.await {
                    eprintln!("subscriber {i}: {e:#}");
                }
            });
        }
        let subs = Subscribers {
            tasks,
            log,
            count: n,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while subs.received() < n {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} subscribers got their first event",
                    subs.received()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(subs)
    }

    pub fn received(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Arrival times of the events with id `version`.
    pub fn arrivals(&self, version: u64) -> Vec<Instant> {
        self.log
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(v, _)| *v == version)
                    .map(|(_, t)| *t)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many subscribers have the event `version` (or a later one).
    pub fn delivered(&self, version: u64) -> usize {
        self.log
            .lock()
            .map(|l| l.iter().filter(|(v, _)| *v >= version).count())
            .unwrap_or(0)
    }

    pub fn close(mut self) {
        self.tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks() {
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        events(
            &mut buf,
            b"retry: 2000\nid: 5\ndata: {}\n\n: heartbeat\n\nid: 6\n",
            |v| seen.push(v),
        );
        events(&mut buf, b"\nid: 7\nda", |v| seen.push(v));
        events(&mut buf, b"ta: {\"x\":1}\n\n", |v| seen.push(v));
        assert_eq!(seen, vec![5, 7], "id-only events carry no data");
        assert!(buf.is_empty());
    }
}
