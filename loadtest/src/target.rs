//! One HTTP/1 target: where to connect, and how to build request `i`
//! (`GET {base}/api/v1/entitlements/?customerId={prefix}{i mod customers}`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Sender = SendRequest<Empty<Bytes>>;

#[derive(Debug)]
pub struct Target {
    host: String,
    port: u16,
    host_header: HeaderValue,
    authorization: HeaderValue,
    /// `{base}/api/v1/entitlements/?customerId={encoded prefix}`.
    path_prefix: String,
    customers: u64,
    /// The URL without credentials, for reports.
    pub display: String,
}

impl Target {
    pub fn new(
        url: &str,
        key: &str,
        customer_prefix: &str,
        customers: u64,
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
        let base = uri.path().trim_end_matches('/');
        let mut path_prefix = format!("{base}/api/v1/entitlements/?customerId=");
        percent_encode(customer_prefix, &mut path_prefix);
        let target = Target {
            host: host.to_owned(),
            port,
            host_header: HeaderValue::from_str(authority.as_str()).context("invalid host")?,
            authorization: HeaderValue::from_str(&format!("Bearer {key}"))
                .context("the key cannot be sent in an HTTP header")?,
            path_prefix,
            customers: customers.max(1),
            display: format!("http://{authority}{base}"),
        };
        target
            .request(0)
            .context("building a request for this target")?;
        Ok(target)
    }

    pub fn request(&self, i: u64) -> anyhow::Result<Request<Empty<Bytes>>> {
        let mut path = String::with_capacity(self.path_prefix.len() + 20);
        path.push_str(&self.path_prefix);
        let _ = write!(path, "{}", i % self.customers);
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = Uri::try_from(path)?;
        let headers = req.headers_mut();
        headers.insert(HOST, self.host_header.clone());
        headers.insert(AUTHORIZATION, self.authorization.clone());
        Ok(req)
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

/// RFC 3986 query-component encoding: unreserved characters pass, everything else is `%XX`.
fn percent_encode(s: &str, out: &mut String) {
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

    #[test]
    fn builds_entitlement_requests() {
        let t = Target::new("http://127.0.0.1:8081/", "pk_test_abcdefgh", "c u&", 3)
            .expect("valid target");
        let req = t.request(4).expect("valid request");
        assert_eq!(
            req.uri().to_string(),
            "/api/v1/entitlements/?customerId=c%20u%261"
        );
        assert_eq!(req.headers()[HOST], "127.0.0.1:8081");
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer pk_test_abcdefgh");
        assert_eq!(t.display, "http://127.0.0.1:8081");
    }

    #[test]
    fn refuses_what_it_cannot_drive() {
        assert!(Target::new("https://127.0.0.1", "k", "", 1).is_err());
        assert!(Target::new("127.0.0.1:8081", "k", "", 1).is_err());
        assert!(Target::new("http://127.0.0.1", "bad\nkey", "", 1).is_err());
    }
}
