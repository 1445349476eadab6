//! The listener flags both binaries take, declared once: timeouts, the connection cap, TLS and
//! the drain deadline. Each binary flattens [`ServerArgs`] into its own `clap` command.

use std::path::PathBuf;
use std::time::Duration;

use super::{ServerLimits, TlsConfig, TlsError};

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Close a connection that has not sent a complete request head this long after it began
    /// one (idle keep-alive connections included).
    #[arg(
        long,
        env = "TOLLGATE_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub http_header_timeout_ms: u64,
    /// Close a keep-alive connection with no request in flight for this long (the header
    /// timeout applies too: the smaller one wins).
    #[arg(long, env = "TOLLGATE_HTTP_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub http_idle_timeout_ms: u64,
    /// Close the connection of a request not answered within this long (reading its body
    /// included; a stream counts as answered once its headers are sent).
    #[arg(
        long,
        env = "TOLLGATE_HTTP_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub http_request_timeout_ms: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Connections from one IP address at once; more are closed as they arrive (0: no cap).
    /// Behind a reverse proxy every connection comes from the proxy: raise it, or cap there.
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS_PER_IP", default_value_t = 1_000)]
    pub max_connections_per_ip: usize,
    /// Close a connection whose client has not taken any of a response for this long (a
    /// client that never reads cannot hold its slot for ever).
    #[arg(long, env = "TOLLGATE_HTTP_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_write_timeout_ms: u64,
    /// PEM certificate chain: with `--tls-key`, the server serves HTTPS only.
    #[arg(long, env = "TOLLGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "TOLLGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long SIGTERM waits for in-flight requests, in seconds.
    #[arg(long, env = "TOLLGATE_DRAIN_SECS", default_value_t = 10)]
    pub drain_secs: u64,
}

impl ServerArgs {
    /// The listener's limits (each at least 1).
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_millis(self.http_header_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.http_idle_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(self.http_request_timeout_ms.max(1)),
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip,
            write_timeout: Duration::from_millis(self.http_write_timeout_ms.max(1)),
        }
    }

    /// The certificate and key, when both are given.
    pub fn tls(&self) -> Result<Option<TlsConfig>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsConfig::from_pem_files(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }
}
