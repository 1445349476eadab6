//! Starting the real binaries on random loopback ports, each control plane with its own SQLite
//! file, and typed helpers to talk to them over HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate_shared::keys::generate;
use tollgate_shared::{KeyKind, Mode};

pub fn bin(name: &str) -> PathBuf {
    let cp = PathBuf::from(env!("CARGO_BIN_EXE_control-plane"));
    let path = cp.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace`) first",
        path.display()
    );
    path
}

pub fn example_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog/example.json")
}

/// A child process that is killed when dropped, with its stdout lines available.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// Waits for the "listening on http(s)://ADDR" line every binary prints once bound: the
    /// scheme (`http` or `https`) and address of the "listening on …" line.
    pub fn listening(&mut self) -> (&'static str, SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    for (scheme, marker) in [
                        ("http", "listening on http://"),
                        ("https", "listening on https://"),
                    ] {
                        if let Some(rest) = line.split(marker).nth(1) {
                            let addr = rest.split_whitespace().next().unwrap_or("");
                            return (scheme, addr.parse().expect("address"));
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("process exited early: {status}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("process closed stdout before listening")
                }
            }
        }
        panic!("process did not start listening");
    }

    /// Every line printed until one containing `needle` (that one last).
    pub fn lines_until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(60)) {
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no line containing {needle:?} in {seen:?}");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone, Debug)]
pub struct Keys {
    pub secret: String,
    pub publishable: String,
    pub live_secret: String,
    pub edge_sync: String,
}

impl Keys {
    pub fn random() -> Keys {
        Keys {
            secret: generate(KeyKind::Secret, Mode::Test),
            publishable: generate(KeyKind::Publishable, Mode::Test),
            live_secret: generate(KeyKind::Secret, Mode::Live),
            edge_sync: generate(KeyKind::EdgeSync, Mode::Test),
        }
    }
}

/// Which engine a control plane runs on. Every suite runs on both (see [`both!`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// In CI a test that needs a missing program fails; elsewhere it skips, loudly.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Reports a missing program: panics in CI, prints a loud SKIPPED line elsewhere.
pub fn missing(test: &str, what: &str) {
    assert!(!in_ci(), "{test}: {what} (CI must provide it)");
    eprintln!("\n\n!!!!!!!! SKIPPED {test}: {what}\n");
}

/// A PostgreSQL server for the whole test process: the one `.ci/run` started
/// (`TOLLGATE_TEST_POSTGRES_URL`, an admin URL), or one started here with `initdb` + `pg_ctl`
/// into a temporary directory, stopped by a watchdog when this process exits.
pub struct PgServer {
    admin_url: String,
    psql: PathBuf,
}

static PG: std::sync::OnceLock<Result<PgServer, String>> = std::sync::OnceLock::new();

pub fn postgres() -> Result<&'static PgServer, String> {
    PG.get_or_init(start_postgres)
        .as_ref()
        .map_err(Clone::clone)
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    });
    from_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.exists())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

fn start_postgres() -> Result<PgServer, String> {
    let psql = pg_bin("psql").ok_or("psql is not installed")?;
    if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
        return Ok(PgServer {
            admin_url: url,
            psql,
        });
    }
    let initdb = pg_bin("initdb").ok_or("initdb is not installed (apt-get install postgresql)")?;
    let pg_ctl = pg_bin("pg_ctl").ok_or("pg_ctl is not installed")?;
    let dir = tempfile::Builder::new()
        .prefix("tollgate-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let data = dir.join("data");
    // PostgreSQL refuses to run as root: run it as the `postgres` user then.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let run = |program: &Path| -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if root {
        let ok = Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot hand a data directory to the postgres user".into());
        }
    }
    let ok = run(&initdb)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err("initdb failed".into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off",
        dir.display()
    );
    let ok = run(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .arg("-o")
        .arg(&options)
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!(
            "pg_ctl start failed (see {}/postgres.log)",
            dir.display()
        ));
    }
    // Stop the server when this test process is gone.
    let stop = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; {} {} -D {} -m immediate stop; rm -rf {}",
        std::process::id(),
        if root { "runuser -u postgres --" } else { "" },
        pg_ctl.display(),
        data.display(),
        dir.display()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(stop)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    Ok(PgServer {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        psql,
    })
}

impl PgServer {
    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let out = Command::new(&self.psql)
            .arg(&self.admin_url)
            .args(["-v", "ON_ERROR_STOP=1", "-Atc"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }
}

/// Runs an async test body once per backend: `name::sqlite` and `name::postgres`. The PostgreSQL
/// run fails in CI and skips loudly elsewhere when no server can be had.
#[macro_export]
macro_rules! both {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: Db) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run(Db::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                if let Err(why) = $crate::helpers::postgres() {
                    $crate::helpers::missing(concat!(stringify!($name), "::postgres"), &why);
                    return;
                }
                run(Db::Postgres).await
            }

            async fn run($db: Db) $body
        }
    };
}

pub struct ControlPlane {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub url: String,
    pub keys: Keys,
    /// The database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    pub backend: Db,
    dir: std::sync::Arc<tempfile::TempDir>,
    /// Extra environment (flags) this control plane was started with; replicas and restarts
    /// inherit it.
    env: Vec<(String, String)>,
}

impl ControlPlane {
    /// A control plane on SQLite.
    pub fn start() -> ControlPlane {
        Self::start_on(Db::Sqlite)
    }

    /// A control plane on a fresh database of `backend`.
    pub fn start_on(backend: Db) -> ControlPlane {
        Self::start_on_with(backend, &[])
    }

    /// A control plane on a fresh database of `backend`, with extra environment variables
    /// (each flag has one: `TOLLGATE_…`).
    pub fn start_on_with(backend: Db, env: &[(&str, &str)]) -> ControlPlane {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let database_url = match backend {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("tollgate.db").display()),
            Db::Postgres => postgres().expect("postgres").fresh_database(),
        };
        Self::start_with(
            Keys::random(),
            database_url,
            backend,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            env,
        )
    }

    /// Another replica on the same database (PostgreSQL), on a port of its own.
    pub fn replica(&self) -> ControlPlane {
        Self::start_with(
            self.keys.clone(),
            self.database_url.clone(),
            self.backend,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            self.dir.clone(),
            self.env.clone(),
        )
    }

    fn start_with(
        keys: Keys,
        database_url: String,
        backend: Db,
        listen: SocketAddr,
        dir: std::sync::Arc<tempfile::TempDir>,
        env: Vec<(String, String)>,
    ) -> ControlPlane {
        let mut proc = Proc::spawn(
            Command::new(bin("control-plane"))
                .arg("serve")
                .arg("--listen")
                .arg(listen.to_string())
                .arg("--database-url")
                .arg(&database_url)
                .arg("--catalog")
                .arg(example_catalog())
                .arg("--sync-heartbeat-ms")
                .arg("200")
                .env("TOLLGATE_SECRET_KEY", &keys.secret)
                .env("TOLLGATE_PUBLISHABLE_KEY", &keys.publishable)
                .env("TOLLGATE_LIVE_SECRET_KEY", &keys.live_secret)
                .env("TOLLGATE_EDGE_SYNC_KEY", &keys.edge_sync)
                .env("TOLLGATE_WEBHOOK_RETRY_BASE_MS", "200")
                // Test receivers listen on loopback; the refusal itself is tested with "false".
                .env("TOLLGATE_ALLOW_PRIVATE_WEBHOOK_URLS", "true")
                // Every test client is on loopback, and some hammer: the limits are tested
                // on their own (hardening.rs) with small values.
                .env("TOLLGATE_RATE_LIMIT_PER_IP", "0")
                .env("TOLLGATE_RATE_LIMIT_PER_KEY", "0")
                .env("RUST_LOG", "warn")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        let (scheme, addr) = proc.listening();
        ControlPlane {
            proc,
            addr,
            url: format!("{scheme}://{addr}"),
            keys,
            database_url,
            backend,
            dir,
            env,
        }
    }

    /// Kills the process and hands back what is needed to start it again later.
    pub fn stop(self) -> StoppedControlPlane {
        let ControlPlane {
            mut proc,
            addr,
            keys,
            database_url,
            backend,
            dir,
            env,
            ..
        } = self;
        proc.kill();
        StoppedControlPlane {
            addr,
            keys,
            database_url,
            backend,
            dir,
            env,
        }
    }

    pub fn api(&self) -> Api {
        Api {
            base: self.url.clone(),
            key: self.keys.secret.clone(),
            client: client(),
        }
    }

    pub fn api_with(&self, key: &str) -> Api {
        Api {
            base: self.url.clone(),
            key: key.to_owned(),
            client: client(),
        }
    }

    pub fn edge(&self) -> Edge {
        Edge::start(&self.url, &self.keys)
    }
}

pub struct StoppedControlPlane {
    pub addr: SocketAddr,
    keys: Keys,
    database_url: String,
    backend: Db,
    dir: std::sync::Arc<tempfile::TempDir>,
    env: Vec<(String, String)>,
}

impl StoppedControlPlane {
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Starts again on the same address, but on another database (after `control-plane copy`).
    pub fn start_on_database(self, database_url: String, backend: Db) -> ControlPlane {
        ControlPlane::start_with(
            self.keys,
            database_url,
            backend,
            self.addr,
            self.dir,
            self.env,
        )
    }

    pub fn start(self) -> ControlPlane {
        ControlPlane::start_with(
            self.keys,
            self.database_url,
            self.backend,
            self.addr,
            self.dir,
            self.env,
        )
    }

    /// Starts again without the environment variable `key` (a failpoint, say).
    pub fn start_without(mut self, key: &str) -> ControlPlane {
        self.env.retain(|(k, _)| k != key);
        self.start()
    }
}

pub struct Edge {
    pub proc: Proc,
    pub url: String,
    pub keys: Keys,
}

impl Edge {
    pub fn start(control_plane: &str, keys: &Keys) -> Edge {
        Self::start_with(control_plane, keys, &[])
    }

    /// An edge with extra command-line arguments (`--control-plane-ca`, `--tls-cert`, …).
    pub fn start_with(control_plane: &str, keys: &Keys, args: &[&str]) -> Edge {
        let mut proc = Proc::spawn(
            Command::new(bin("edge"))
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--control-plane-url")
                .arg(control_plane)
                .arg("--sync-key")
                .arg(&keys.edge_sync)
                .arg("--idle-timeout-ms")
                .arg("2000")
                .arg("--backoff-max-ms")
                .arg("300")
                .args(args)
                .env("RUST_LOG", "warn"),
        );
        let (scheme, addr) = proc.listening();
        Edge {
            proc,
            url: format!("{scheme}://{addr}"),
            keys: keys.clone(),
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = client().get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("edge request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A customer's entitlements, with the test publishable key.
    pub async fn entitlements(&self, customer: &str) -> Value {
        let (status, body) = self
            .get(
                &format!("/api/v1/entitlements/?customerId={customer}"),
                Some(&self.keys.publishable),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn ready(&self) -> Value {
        self.get("/readyz", None).await.1
    }

    /// The change-log version the edge has applied (its `/readyz`).
    pub async fn version(&self) -> u64 {
        self.ready().await["version"].as_u64().unwrap_or(0)
    }

    pub async fn wait_ready(&self) {
        wait_until("edge ready", || async {
            self.ready().await["ready"] == true
        })
        .await;
    }
}

pub fn has_access(entitlements: &Value, feature: &str) -> bool {
    entitlements["entitlements"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["featureId"] == feature))
        .is_some_and(|e| e["hasAccess"] == true)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Polls until `check` holds. The deadline only stops a broken test from hanging; nothing
/// here asserts how fast anything is.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(""));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A POST whose transport failure (the server was killed) is `None` rather than a panic.
    pub async fn try_post(&self, path: &str, body: Value) -> Option<StatusCode> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(""))
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = resp.status();
        resp.bytes().await.ok()?;
        Some(status)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(""))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A POST (with an `Idempotency-Key` when given) and the `Tollgate-Version` it answered.
    pub async fn post_versioned(
        &self,
        path: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, Value, Option<u64>) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(""))
            .json(&body);
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let version = resp.headers().get("tollgate-version").map(|v| {
            v.to_str()
                .expect("ASCII")
                .parse()
                .expect("a version number")
        });
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, version)
    }

    pub async fn create_customer(&self, id: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/customers/",
                json!({"customerId": id, "email": format!("{id}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Checkout + test-mode completion with `pm_card_visa`; returns the subscription.
    pub async fn subscribe_paid(&self, customer: &str, plan: &str, period: &str) -> Value {
        let (status, co) = self
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier": plan, "chargePeriod": period, "customerId": customer,
                       "successUrl": "https://app.example.com/success"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        let id = co["checkoutSessionId"].as_str().expect("session id");
        let (status, done) = self
            .post(
                &format!("/api/v1/checkout/{id}/complete/"),
                json!({"paymentMethod": "pm_card_visa"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        done["subscription"].clone()
    }
}

/// The envelope every error must have, with its code equal to the HTTP status.
pub fn assert_envelope(status: StatusCode, body: &Value, context: &str) {
    let e = &body["error"];
    assert_eq!(
        e["code"].as_u64(),
        Some(u64::from(status.as_u16())),
        "{context}: {body}"
    );
    assert!(
        e["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{context}: {body}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: {body}"
    );
}

// ---- clocks, cards and subscriptions: what lifecycle tests set up ----------------------------

/// A test clock at `frozen` and a customer living on it. Answers the clock's id.
pub async fn clocked(api: &Api, customer: &str, frozen: &str) -> String {
    clocked_customer(api, json!({"customerId": customer}), frozen).await
}

/// A test clock at `frozen` and a customer on it (with an email) with a card on file.
pub async fn clocked_with_card(api: &Api, customer: &str, frozen: &str) -> String {
    let customer_body = json!({"customerId": customer, "email": format!("{customer}@example.com")});
    let clock = clocked_customer(api, customer_body, frozen).await;
    card(api, customer, "pm_card_visa").await;
    clock
}

async fn clocked_customer(api: &Api, mut customer: Value, frozen: &str) -> String {
    let (status, clock) = api
        .post("/api/v1/test-clocks/", json!({"frozenTime": frozen}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{clock}");
    let clock_id = clock["id"].as_str().unwrap().to_owned();
    customer["testClock"] = json!(clock_id);
    let (status, body) = api.post("/api/v1/customers/", customer).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    clock_id
}

/// Moves a test clock to `to` (RFC 3339); answers what the advance ran.
pub async fn advance(api: &Api, clock: &str, to: &str) -> Value {
    let (status, body) = api
        .post(
            &format!("/api/v1/test-clocks/{clock}/advance/"),
            json!({"frozenTime": to}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Puts the test card `token` (`pm_card_visa`, …) on file for `customer`.
pub async fn card(api: &Api, customer: &str, token: &str) {
    let (status, body) = api
        .post(
            &format!("/api/v1/customers/{customer}/payment-methods/"),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// PayKit's `subscribe` for `customer` to `plan` at `period` (with a success URL, for when a
/// checkout is needed).
pub async fn subscribe(api: &Api, customer: &str, plan: &str, period: &str) -> (StatusCode, Value) {
    api.post(
        "/api/v1/subscribe/",
        json!({"customerId": customer, "planId": plan, "chargePeriod": period, "successUrl": "https://app.example.com/ok"}),
    )
    .await
}

/// [`subscribe`], which must answer 200 with `action`.
pub async fn subscribe_ok(
    api: &Api,
    customer: &str,
    plan: &str,
    period: &str,
    action: &str,
) -> Value {
    let (status, body) = subscribe(api, customer, plan, period).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["action"], action, "{body}");
    body
}

/// Subscribes `customer` (card on file) to `plan`; answers the subscription id.
pub async fn subscribed(api: &Api, customer: &str, plan: &str, period: &str) -> String {
    let (status, body) = subscribe(api, customer, plan, period).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subscription"]["id"].as_str().unwrap().to_owned()
}

/// A subscription as `GET /api/v1/subscriptions/{id}/` answers it (200 asserted).
pub async fn sub(api: &Api, id: &str) -> Value {
    let (status, body) = api.get(&format!("/api/v1/subscriptions/{id}/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A customer's invoices, newest first (up to 100).
pub async fn invoices(api: &Api, customer: &str) -> Vec<Value> {
    let (status, body) = api
        .get(&format!(
            "/api/v1/invoices/?customer_id={customer}&page_size=100"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().unwrap().clone()
}
