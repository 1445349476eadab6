//! One HTTP/1 target: where to connect, and how to build request `i`. Either the edge's
//! `GET {base}/api/v1/entitlements/?customerId={prefix}{i mod customers}`, or a JSON `POST` to a
//! fixed path whose body is made from `i` (the control-plane scenarios).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An empty `Full` is end-of-stream from the start, so a `GET` goes out exactly as with `Empty`
/// (no `Content-Length`, no body).
pub type Sender = SendRequest<Full<Bytes>>;

/// Makes the JSON body of request `i`.
pub type BodyFn = Box<dyn Fn(u64) -> Bytes + Send + Sync>;

/// What request `i` is.
enum Shape {
    /// `GET {path_prefix}{c}` with `c = i mod customers`, or, `scatter`ed, a hash of `i` mod
    /// customers (so that any run, however short, touches customers all over the id space).
    Entitlements {
        path_prefix: String,
        customers: u64,
        scatter: bool,
    },
    /// `POST {path}` with `body(i)` as JSON.
    PostJson { path: Uri, body: BodyFn },
}

/// Which entitlement read a target sends (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// `GET /api/v1/entitlements/?customerId=…`: the whole list.
    List,
    /// `GET /api/v1/entitlements/{feature}/?customerId=…`: one entitlement object.
    FeaturePath(String),
    /// `GET /api/v1/entitlements?feature_id={feature}&customer_id=…`: the list narrowed to one
    /// feature, as Kelviq's SDKs ask.
    FeatureQuery(String),
}

/// A bijective mix of `i` (splitmix64's finaliser): consecutive requests land far apart.
pub fn scatter_index(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a run counts per response, next to success and failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// Nothing (the edge: keep the hot loop lean).
    Nothing,
    /// The status code: `HTTP 200`, `HTTP 404`, …
    Status,
    /// A successful JSON body's top-level string field (e.g. a subscribe's `action`);
    /// `HTTP nnn` for other statuses.
    Field(&'static str),
}

pub struct Target {
    host: String,
    port: u16,
    host_header: HeaderValue,
    authorization: HeaderValue,
    /// The URL's path without a trailing slash (usually empty).
    base: String,
    shape: Shape,
    pub tally: Tally,
    /// The URL without credentials, for reports.
    pub display: String,
}

impl Target {
    /// The edge's `GET /api/v1/entitlements/?customerId=…`, cycling over `customers` ids.
    pub fn new(
        url: &str,
        key: &str,
        customer_prefix: &str,
        customers: u64,
    ) -> anyhow::Result<Self> {
        Target::entitlements(url, key, customer_prefix, customers, Variant::List, false)
    }

    /// One of the edge's entitlement reads (`variant`), over `customers` ids; `scatter` spreads
    /// consecutive requests over the whole id space instead of walking it in order.
    pub fn entitlements(
        url: &str,
        key: &str,
        customer_prefix: &str,
        customers: u64,
        variant: Variant,
        scatter: bool,
    ) -> anyhow::Result<Self> {
        Target::build(url, key, |base| {
            let mut path_prefix = match &variant {
                Variant::List => format!("{base}/api/v1/entitlements/?customerId="),
                Variant::FeaturePath(f) => {
                    let mut p = format!("{base}/api/v1/entitlements/");
                    percent_encode(f, &mut p);
                    p.push_str("/?customerId=");
                    p
                }
                Variant::FeatureQuery(f) => {
                    let mut p = format!("{base}/api/v1/entitlements?feature_id=");
                    percent_encode(f, &mut p);
                    p.push_str("&customer_id=");
                    p
                }
            };
            percent_encode(customer_prefix, &mut path_prefix);
            Ok(Shape::Entitlements {
                path_prefix,
                customers: customers.max(1),
                scatter,
            })
        })
    }

    /// `POST {base}{path}` with `body(i)` as the JSON body of request `i`.
    pub fn post_json(url: &str, key: &str, path: &str, body: BodyFn) -> anyhow::Result<Self> {
        Target::build(url, key, |base| {
            let path = Uri::try_from(format!("{base}{path}"))
                .with_context(|| format!("invalid path {path:?}"))?;
            Ok(Shape::PostJson { path, body })
        })
    }

    /// Counts `tally` for every response of runs against this target.
    pub fn with_tally(mut self, tally: Tally) -> Self {
        self.tally = tally;
        self
    }

    fn build(
        url: &str,
        key: &str,
        shape: impl FnOnce(&str) -> anyhow::Result<Shape>,
    ) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("parsing URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("only plain http targets are supported, not {other}"),
            None => bail!("URL {url:?} needs a scheme, e.g. http://127.0.0.1:8081"),
        }
        let authority = uri.authority().context("URL has no host")?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let base = uri.path().trim_end_matches('/').to_owned();
        let target = Target {
            host: host.to_owned(),
            port,
            host_header: HeaderValue::from_str(authority.as_str()).context("invalid host")?,
            authorization: HeaderValue::from_str(&format!("Bearer {key}"))
                .context("the key cannot be sent in an HTTP header")?,
            shape: shape(&base)?,
            display: format!("http://{authority}{base}"),
            base,
            tally: Tally::Nothing,
        };
        target
            .request(0)
            .context("building a request for this target")?;
        Ok(target)
    }

    pub fn request(&self, i: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        match &self.shape {
            Shape::Entitlements {
                path_prefix,
                customers,
                scatter,
            } => {
                let mut path = String::with_capacity(path_prefix.len() + 20);
                path.push_str(path_prefix);
                let n = if *scatter { scatter_index(i) } else { i };
                let _ = write!(path, "{}", n % customers);
                let mut req = Request::new(Full::new(Bytes::new()));
                *req.uri_mut() = Uri::try_from(path)?;
                self.headers(&mut req);
                Ok(req)
            }
            Shape::PostJson { path, body } => {
                let mut req = Request::new(Full::new(body(i)));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = path.clone();
                self.headers(&mut req);
                req.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(req)
            }
        }
    }

    /// `GET {base}{path_and_query}` with this target's host and key (e.g. for polling).
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = Uri::try_from(format!("{}{path_and_query}", self.base))?;
        self.headers(&mut req);
        Ok(req)
    }

    fn headers(&self, req: &mut Request<Full<Bytes>>) {
        let headers = req.headers_mut();
        headers.insert(HOST, self.host_header.clone());
        headers.insert(AUTHORIZATION, self.authorization.clone());
    }

    /// Opens one keep-alive HTTP/1 connection; its driver runs as a task until the sender drops.
    pub async fn connect(&self, timeout: Duration) -> anyhow::Result<Sender> {
        let stream =
            tokio::time::timeout(timeout, TcpStream::connect((self.host.as_str(), self.port)))
                .await
                .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One request on a fresh connection, for probing (e.g. learning the body size).
    pub async fn fetch_once(
        &self,
        i: u64,
        timeout: Duration,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut sender = self.connect(timeout).await?;
        let exchange = async {
            sender.ready().await?;
            let resp = sender.send_request(self.request(i)?).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .context("request timed out")?
    }
}

/// Refuses URLs whose host is not loopback (`127.0.0.0/8`, `::1`, `localhost`): the scenarios
/// that write to a control plane are for throw-away local set-ups only.
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("parsing URL {url:?}"))?;
    let host = uri
        .host()
        .with_context(|| format!("URL {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("{url}: this scenario only runs against loopback (127.0.0.0/8, ::1, localhost)");
    }
    Ok(())
}

/// RFC 3986 query-component encoding: unreserved characters pass, everything else is `%XX`.
pub fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[test]
    fn builds_entitlement_requests() {
        let t = Target::new("http://127.0.0.1:8081/", "pk_test_abcdefgh", "c u&", 3)
            .expect("valid target");
        let req = t.request(4).expect("valid request");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri().to_string(),
            "/api/v1/entitlements/?customerId=c%20u%261"
        );
        assert_eq!(req.headers()[HOST], "127.0.0.1:8081");
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer pk_test_abcdefgh");
        assert!(req.body().is_end_stream(), "a GET carries no body");
        assert_eq!(t.display, "http://127.0.0.1:8081");
    }

    #[test]
    fn builds_feature_reads_and_scatters() {
        let path = Target::entitlements(
            "http://127.0.0.1:8081",
            "pk_test_abcdefgh",
            "cus_",
            10,
            Variant::FeaturePath("api-calls".into()),
            false,
        )
        .expect("valid target");
        assert_eq!(
            path.request(13).expect("request").uri().to_string(),
            "/api/v1/entitlements/api-calls/?customerId=cus_3"
        );
        let query = Target::entitlements(
            "http://127.0.0.1:8081",
            "pk_test_abcdefgh",
            "cus_",
            1_000_000,
            Variant::FeatureQuery("sso".into()),
            true,
        )
        .expect("valid target");
        let uri = query.request(1).expect("request").uri().to_string();
        assert!(
            uri.starts_with("/api/v1/entitlements?feature_id=sso&customer_id=cus_"),
            "{uri}"
        );
        assert_ne!(uri, query.request(2).expect("request").uri().to_string());
    }

    #[test]
    fn builds_json_posts() {
        let t = Target::post_json(
            "http://127.0.0.1:8080/base/",
            "sk_test_x",
            "/api/v1/usage/",
            Box::new(|i| Bytes::from(format!("{{\"n\":{i}}}"))),
        )
        .expect("valid target");
        let req = t.request(7).expect("valid request");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().to_string(), "/base/api/v1/usage/");
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer sk_test_x");
        assert_eq!(req.body().size_hint().exact(), Some(7));
        let get = t.get("/readyz").expect("valid request");
        assert_eq!(get.uri().to_string(), "/base/readyz");
    }

    #[test]
    fn loopback_only() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:9/",
            "http://localhost:1",
        ] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "http://[::2]",
            "/x",
        ] {
            assert!(ensure_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_drive() {
        assert!(Target::new("https://127.0.0.1", "k", "", 1).is_err());
        assert!(Target::new("127.0.0.1:8081", "k", "", 1).is_err());
        assert!(Target::new("http://127.0.0.1", "bad\nkey", "", 1).is_err());
        let body: BodyFn = Box::new(|_| Bytes::new());
        assert!(Target::post_json("http://127.0.0.1", "k", "/a b", body).is_err());
    }
}
