//! A small JSON client for set-up work against a control plane or an edge (seeding, attaching
//! cards, reading `/readyz`): pooled keep-alive connections, retries on transient failures.
//! Not used for measured load, which goes through [`crate::driver`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// Attempts per request: the first plus retries after I/O errors, timeouts and 5xx answers.
const ATTEMPTS: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A server reached over plain HTTP/1 with one key.
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port{base path}` without a trailing slash.
    base: String,
    authorization: HeaderValue,
    timeout: Duration,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub replayed: bool,
}

impl Api {
    pub fn new(url: &str, key: &str, timeout: Duration) -> anyhow::Result<Api> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("parsing URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("only plain http servers are supported, not {other}"),
            None => bail!("URL {url:?} needs a scheme, e.g. http://127.0.0.1:8080"),
        }
        let authority = uri.authority().context("URL has no host")?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Ok(Api {
            client: Client::builder(TokioExecutor::new()).build(http),
            base: format!("http://{authority}{}", uri.path().trim_end_matches('/')),
            authorization: HeaderValue::from_str(&format!("Bearer {key}"))
                .context("the key cannot be sent in an HTTP header")?,
            timeout,
        })
    }

    /// One POST of a JSON body, retried (same idempotency key) on transient failures.
    pub async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> anyhow::Result<Answer> {
        let body = Bytes::from(serde_json::to_vec(body).context("encoding a request body")?);
        self.retried(Method::POST, path, Some(idempotency_key), body)
            .await
    }

    /// One GET, retried on transient failures.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.retried(Method::GET, path, None, Bytes::new()).await
    }

    async fn retried(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let mut last_error = anyhow!("no attempt made");
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
            }
            match self
                .once(method.clone(), path, idempotency_key, body.clone())
                .await
            {
                // 409 here is "a request with this key is still running" or "exists": only the
                // caller knows which, so it is returned, not retried.
                Ok(answer) if !answer.status.is_server_error() => return Ok(answer),
                Ok(answer) => {
                    last_error = anyhow!("{method} {path}: {}", describe(&answer));
                }
                Err(e) => last_error = e.context(format!("{method} {path}")),
            }
        }
        Err(last_error)
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.authorization.clone());
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        let req = req.body(Full::new(body)).context("building a request")?;
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let replayed = resp.headers().contains_key("idempotent-replayed");
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer {
                status,
                body,
                replayed,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .context("request timed out")?
    }
}

pub fn describe(answer: &Answer) -> String {
    let snippet: String = String::from_utf8_lossy(&answer.body)
        .chars()
        .take(300)
        .collect();
    format!("HTTP {}: {snippet}", answer.status)
}

/// A progress bar over `total` items (hidden with `quiet`; indicatif also hides it when stderr
/// is not a terminal).
pub fn progress_bar(total: u64, quiet: bool, template: &str) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Runs `work(i)` for every `i` in `0..count`, at most `concurrency` at once, ticking `pb` per
/// item. Stops handing out items after the first error, and returns it. Each worker's loop is
/// bounded by `count`.
pub async fn for_each<F, Fut>(
    count: u64,
    concurrency: u16,
    pb: &ProgressBar,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (work, next, failed, pb) = (work.clone(), next.clone(), failed.clone(), pb.clone());
        workers.spawn(async move {
            for _ in 0..count {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || failed.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = work(i).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                pb.inc(1);
            }
            anyhow::Ok(())
        });
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let outcome = joined
            .map_err(|e| anyhow!("a worker task panicked: {e}"))
            .and_then(|r| r);
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_it_cannot_reach() {
        let t = Duration::from_secs(1);
        assert!(Api::new("https://127.0.0.1:8080", "sk_test_x", t).is_err());
        assert!(Api::new("127.0.0.1:8080", "sk_test_x", t).is_err());
        assert!(Api::new("http://127.0.0.1:8080", "bad\nkey", t).is_err());
        let api = Api::new("http://127.0.0.1:8080/", "sk_test_x", t).expect("valid");
        assert_eq!(api.base, "http://127.0.0.1:8080");
    }

    #[test]
    fn for_each_visits_every_item_once_and_stops_on_error() {
        let rt = crate::driver::runtime(1).expect("runtime");
        let pb = ProgressBar::hidden();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        rt.block_on(for_each(50, 4, &pb, move |i| {
            let s = s.clone();
            async move {
                s.lock().expect("lock").push(i);
                Ok(())
            }
        }))
        .expect("no errors");
        let mut seen = seen.lock().expect("lock").clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(pb.position(), 50);

        let err = rt.block_on(for_each(1000, 2, &pb, |i| async move {
            if i == 3 { bail!("item {i}") } else { Ok(()) }
        }));
        assert!(err.is_err());
    }
}
