//! Issue 9's attacker and careless-client inputs against the control plane's public listener:
//! half-sent requests, thousands of idle sockets, made-up methods, and HTTPS end to end.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Waits for the server to close `socket`. The deadline only keeps a broken test from hanging.
async fn closed_by_server(socket: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before the close is fine; keep reading until EOF.
            Ok(Ok(_)) => continue,
        }
    }
}

both! {
    async fn a_half_sent_request_is_closed_within_the_header_timeout(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_HTTP_HEADER_TIMEOUT_MS", "1000")]);
        let mut socket = TcpStream::connect(cp.addr).await.unwrap();
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        assert!(
            closed_by_server(&mut socket).await,
            "a socket that never finished its request head is still open"
        );
        // A socket that says nothing at all goes the same way.
        let mut silent = TcpStream::connect(cp.addr).await.unwrap();
        assert!(closed_by_server(&mut silent).await);
        // And the server still answers.
        let (status, _) = cp.api().get("/api/v1/customers/").await;
        assert_eq!(status, StatusCode::OK);
    }
}

both! {
    async fn two_thousand_idle_sockets_do_not_stop_a_request(db: Db) {
        // All from loopback here: without the per-address cap.
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_MAX_CONNECTIONS_PER_IP", "0")]);
        let mut idle = Vec::with_capacity(2_000);
        for i in 0..2_000 {
            let mut s = TcpStream::connect(cp.addr).await.unwrap();
            // Half of them start a request head and stall, half say nothing.
            if i % 2 == 0 {
                s.write_all(b"POST /api/v1/usage/ HTTP/1.1\r\n").await.unwrap();
            }
            idle.push(s);
        }
        let api = cp.api();
        api.create_customer("still-served").await;
        let (status, body) = api.get("/api/v1/customers/still-served/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        drop(idle);
    }
}

/// Series (non-comment lines) on `/metrics`.
async fn series(cp: &ControlPlane) -> Vec<String> {
    let text = client()
        .get(format!("{}/metrics", cp.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_owned())
        .collect()
}

both! {
    async fn made_up_methods_and_paths_leave_the_series_count_unchanged(db: Db) {
        let cp = ControlPlane::start_on(db);
        let url = cp.url.clone();
        let secret = cp.keys.secret.clone();
        let bogus = |i: usize| {
            let (url, secret) = (url.clone(), secret.clone());
            async move {
                let http = client();
                let method = Method::from_bytes(format!("ZZ{i}").as_bytes()).unwrap();
                let _ = http.request(method, format!("{url}/healthz")).send().await;
                let _ = http.get(format!("{url}/no/such/route/{i}")).send().await;
                let _ = http
                    .get(format!("{url}/api/v1/customers/unknown-{i}/"))
                    .basic_auth(&secret, Some(""))
                    .send()
                    .await;
            }
        };
        // One of each first: the `other` method and `unmatched` route series exist from then on.
        bogus(0).await;
        // The gauges are set by a task shortly after start, and /metrics counts itself.
        wait_until("gauges published", || async {
            series(&cp).await.iter().any(|s| s == "tollgate_webhook_backlog")
        })
        .await;
        let before = series(&cp).await;
        for i in 1..=300 {
            bogus(i).await;
        }
        let after = series(&cp).await;
        let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
        assert!(
            new.is_empty(),
            "bogus traffic added {} series, e.g. {:?}",
            new.len(),
            &new[..new.len().min(5)]
        );
        assert!(
            !after.iter().any(|s| s.contains("ZZ1") || s.contains("unknown-1")),
            "raw methods or ids leaked into labels"
        );
        assert!(
            after
                .iter()
                .any(|s| s.contains("method=\"other\"") && s.contains("tollgate_http_requests_total")),
            "made-up methods are counted as `other`"
        );
        assert!(
            after
                .iter()
                .any(|s| s.contains("route=\"/api/v1/customers/{customer_id}\"")),
            "routes are labelled by their template: {after:?}"
        );
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written to `dir`.
fn certificate(dir: &std::path::Path) -> (String, String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    (
        cert,
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

both! {
    async fn https_end_to_end(db: Db) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, cert_path, key_path) = certificate(dir.path());
        let cp = ControlPlane::start_on_with(
            db,
            &[
                ("TOLLGATE_TLS_CERT", cert_path.as_str()),
                ("TOLLGATE_TLS_KEY", key_path.as_str()),
            ],
        );
        assert!(cp.url.starts_with("https://"), "{}", cp.url);
        let port = cp.addr.port();
        let tls_client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let api = Api {
            base: format!("https://localhost:{port}"),
            key: cp.keys.secret.clone(),
            client: tls_client.clone(),
        };
        // HTTPS only: plain HTTP on the same port gets no answer.
        let plain = client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

        // The edge dials the control plane over HTTPS (verifying with the CA given) and serves
        // HTTPS itself.
        let edge = Edge::start_with(
            &format!("https://localhost:{port}"),
            &cp.keys,
            &[
                "--control-plane-ca",
                &cert_path,
                "--tls-cert",
                &cert_path,
                "--tls-key",
                &key_path,
            ],
        );
        assert!(edge.url.starts_with("https://"), "{}", edge.url);
        let edge_base = edge.url.replace("127.0.0.1", "localhost");

        api.create_customer("tls-user").await;
        let sub = api.subscribe_paid("tls-user", "pro", "MONTHLY").await;
        assert_eq!(sub["status"], "active", "{sub}");
        let (status, body) = api
            .post(
                "/api/v1/usage/",
                json!({"customerId": "tls-user", "featureId": "api-calls", "quantity": 7}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // The checkout page is served over HTTPS too, and links stay https.
        api.create_customer("tls-other").await;
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "tls-other",
                       "successUrl": "https://app.example.com/success"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        assert!(
            co["checkoutUrl"].as_str().unwrap_or("").starts_with("https://"),
            "{co}"
        );

        let mut last = Value::Null;
        let mut synced = false;
        for _ in 0..600 {
            if let Ok(resp) = tls_client
                .get(format!("{edge_base}/api/v1/entitlements/?customerId=tls-user"))
                .bearer_auth(&cp.keys.publishable)
                .send()
                .await
                && resp.status() == StatusCode::OK
            {
                last = resp.json().await.unwrap_or(Value::Null);
                let used = last["entitlements"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["featureId"] == "api-calls"))
                    .map(|e| e["currentUsage"].clone());
                if used == Some(json!(7)) && has_access(&last, "api-calls") {
                    synced = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(synced, "the edge never showed the write made over HTTPS: {last}");
    }
}

/// Every stored idempotent response, as text.
async fn stored_responses(cp: &ControlPlane) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&cp.database_url)
        .await
        .unwrap();
    sqlx::query("SELECT response FROM idempotency_keys WHERE response IS NOT NULL")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.get::<Vec<u8>, _>(0)).into_owned())
        .collect()
}

both! {
    async fn secrets_are_never_replayed_nor_stored(db: Db) {
        let cp = ControlPlane::start_on(db);
        let send = |path: &'static str, body: Value, key: &'static str| {
            let (url, secret) = (cp.url.clone(), cp.keys.secret.clone());
            async move {
                let resp = client()
                    .post(format!("{url}{path}"))
                    .basic_auth(secret, Some(""))
                    .header("idempotency-key", key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let replayed = resp.headers().get("idempotent-replayed").is_some();
                let status = resp.status();
                (status, replayed, resp.json::<Value>().await.unwrap())
            }
        };
        let (receiver, _m) = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (format!("http://{}/hook", l.local_addr().unwrap()), l)
        };
        let cases = [
            ("/api/v1/api-keys/", json!({"kind": "secret", "name": "ci"}), "key-1", "key"),
            ("/api/v1/webhook-endpoints/", json!({"url": receiver, "events": ["*"]}), "hook-1", "secret"),
        ];
        for (path, body, idem, field) in cases {
            let (status, replayed, first) = send(path, body.clone(), idem).await;
            assert_eq!(status, StatusCode::CREATED, "{path}: {first}");
            assert!(!replayed);
            let secret = first[field].as_str().unwrap_or_else(|| panic!("{path}: {first}")).to_owned();
            let (status, replayed, second) = send(path, body, idem).await;
            assert!(replayed, "{path}: not a replay: {second}");
            assert_eq!(status, StatusCode::CREATED, "{path}: {second}");
            assert_eq!(second["id"], first["id"], "{path}: the replay is the same object");
            assert!(second.get(field).is_none(), "{path}: the replay repeats the secret: {second}");
            assert!(
                !stored_responses(&cp).await.iter().any(|r| r.contains(&secret)),
                "{path}: the secret is stored in the idempotency table"
            );
        }
    }
}

both! {
    async fn stored_answers_expire_and_are_pruned(db: Db) {
        let cp = ControlPlane::start_on_with(
            db,
            &[("TOLLGATE_IDEMPOTENCY_TTL_SECS", "1"), ("TOLLGATE_MAINTENANCE_SECS", "1")],
        );
        let post = || async {
            let resp = client()
                .post(format!("{}/api/v1/customers/", cp.url))
                .basic_auth(&cp.keys.secret, Some(""))
                .header("idempotency-key", "ttl-1")
                .json(&json!({"customerId": "ttl"}))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.headers().get("idempotent-replayed").is_some())
        };
        assert_eq!(post().await, (StatusCode::CREATED, false));
        assert_eq!(post().await, (StatusCode::CREATED, true));
        wait_until("the stored answer is pruned", || async {
            stored_responses(&cp).await.is_empty()
        })
        .await;
        // Expired: the request runs again (and finds the customer it made the first time).
        assert_eq!(post().await, (StatusCode::CONFLICT, false));
    }
}

both! {
    /// Redirect URLs are stored parsed and normalized; control characters are refused, so
    /// nothing a caller sends can split the `Location` header later.
    async fn redirect_urls_refuse_control_characters_and_are_stored_normalized(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("redir").await;
        for bad in [
            "https://app.example.com/\u{1}ok",
            "https://app.example.com/ok\nSet-Cookie: x=1",
            "https://app.example.com/ok\r\nLocation: https://evil.example/",
            "https://app.example.com/\u{7f}",
            "javascript:alert(1)",
        ] {
            for field in ["successUrl", "cancelUrl"] {
                let mut body = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY",
                                      "customerId": "redir", "successUrl": "https://app.example.com/ok"});
                body[field] = json!(bad);
                let (status, resp) = api.post("/api/v1/checkout/", body).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={bad:?}: {resp}");
                assert_envelope(status, &resp, bad);
            }
        }
        let (status, co) = api
            .post(
                "/api/v1/checkout/",
                json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "redir",
                       "successUrl": "HTTPS://App.Example.COM:443/a/../done?x=1#frag"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{co}");
        let session = co["checkoutSessionId"].as_str().unwrap();
        let (status, done) = api
            .post(&format!("/api/v1/checkout/{session}/complete/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(
            done["redirectUrl"], "https://app.example.com/done?x=1#frag",
            "{done}"
        );
    }
}

both! {
    /// NUL characters are refused wherever text comes in (PostgreSQL cannot store them; the
    /// fuzzer found a 500 here).
    async fn nul_characters_are_refused_everywhere(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        api.create_customer("nul-owner").await;
        let (status, body) = api
            .post("/api/v1/customers/", json!({"customerId": "a\u{0}b"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_envelope(status, &body, "NUL in a body");
        let (status, body) = api
            .post(
                "/api/v1/license/validate/",
                json!({"licenseKey": "lk\u{0}x", "instanceId": "0"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = api
            .post(
                "/api/v1/customers/",
                json!({"customerId": "meta-nul", "metadata": {"k\u{0}": "v"}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = api.get("/api/v1/customers/?email=a%00b").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = api.get("/api/v1/customers/nul%00owner/").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        // Nothing half-stored, and the API still answers.
        let (status, _) = api.get("/api/v1/customers/nul-owner/").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.get("/api/v1/customers/meta-nul/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

both! {
    /// Issue 15, finding 2: webhook deliveries never go through a proxy from the environment.
    /// Through one, the address guard would check only the proxy's name, and the proxy would
    /// reach whatever the endpoint's URL names. The control plane runs with every proxy
    /// variable pointing at a listener that counts connections: the delivery reaches the
    /// endpoint directly, and the "proxy" sees nothing.
    async fn webhook_deliveries_ignore_proxies_in_the_environment(db: Db) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let proxied = Arc::new(AtomicUsize::new(0));
        {
            let proxied = proxied.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = proxy.accept().await {
                    proxied.fetch_add(1, Ordering::SeqCst);
                    drop(socket);
                }
            });
        }
        let env: Vec<(&str, &str)> = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
            .into_iter()
            .map(|k| (k, proxy_url.as_str()))
            .collect();
        let cp = ControlPlane::start_on_with(db, &env);
        let api = cp.api();
        let (hook, receiver) = crate::webhooks::start_receiver(0).await;
        let (status, ep) = api.post("/api/v1/webhook-endpoints/", json!({"url": hook, "events": ["*"]})).await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        api.create_customer("unproxied").await;
        wait_until("the delivery reached the endpoint", || async {
            !receiver.got.lock().unwrap().is_empty()
        })
        .await;
        assert_eq!(proxied.load(Ordering::SeqCst), 0, "a delivery went through the proxy");
    }
}

/// Issue 15, finding 9: no secret value shows in `--help`, whatever the environment holds.
#[test]
fn help_shows_no_secret_value_from_the_environment() {
    let secrets = [
        ("DATABASE_URL", "postgres://u:hunter2-database@localhost/x"),
        ("TOLLGATE_COPY_FROM", "sqlite://hunter2-from.db"),
        ("TOLLGATE_COPY_TO", "postgres://u:hunter2-copy@localhost/x"),
        ("TOLLGATE_SECRET_KEY", "sk_test_hunter2secret"),
        ("TOLLGATE_PUBLISHABLE_KEY", "pk_test_hunter2publishable"),
        ("TOLLGATE_LIVE_SECRET_KEY", "sk_live_hunter2live"),
        ("TOLLGATE_EDGE_SYNC_KEY", "esk_hunter2sync"),
        ("TOLLGATE_STRIPE_TEST_SECRET_KEY", "sk_test_hunter2stripe"),
        ("TOLLGATE_STRIPE_LIVE_SECRET_KEY", "sk_live_hunter2stripe"),
        ("TOLLGATE_STRIPE_TEST_WEBHOOK_SECRET", "whsec_hunter2test"),
        ("TOLLGATE_STRIPE_LIVE_WEBHOOK_SECRET", "whsec_hunter2live"),
    ];
    for (binary, args) in [
        ("control-plane", &["serve", "--help"][..]),
        ("control-plane", &["copy", "--help"][..]),
        ("edge", &["--help"][..]),
    ] {
        let out = std::process::Command::new(bin(binary))
            .args(args)
            .envs(secrets)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--"), "{binary} {args:?}: {help}");
        assert!(
            !help.contains("hunter2"),
            "{binary} {args:?} shows a secret:\n{help}"
        );
    }
}

both! {
    /// Issue 15, finding 9: keys generated on first start go to a 0600 file, not to standard
    /// output when it is not a terminal (a log stream); they work; a symlink planted where the
    /// file goes stops the start instead of leading the keys elsewhere.
    async fn generated_keys_go_to_a_private_file_not_the_log(db: Db) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("fresh.db").display()),
            Db::Postgres => crate::helpers::postgres().expect("postgres").fresh_database(),
        };
        let keys_file = dir.path().join("keys").join("generated-keys.env");
        let start = |keys_file: &std::path::Path| {
            let mut cmd = std::process::Command::new(bin("control-plane"));
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", &database_url])
                .arg("--generated-keys-file")
                .arg(keys_file)
                .env("RUST_LOG", "warn");
            for k in ["TOLLGATE_SECRET_KEY", "TOLLGATE_PUBLISHABLE_KEY", "TOLLGATE_LIVE_SECRET_KEY", "TOLLGATE_EDGE_SYNC_KEY"] {
                cmd.env_remove(k);
            }
            cmd
        };
        // A planted symlink: the start fails and the link's target stays empty.
        let planted = dir.path().join("planted");
        let decoy = dir.path().join("decoy.env");
        std::fs::write(&decoy, "").unwrap();
        std::os::unix::fs::symlink(&decoy, &planted).unwrap();
        let status = start(&planted).stdout(std::process::Stdio::null()).status().unwrap();
        assert!(!status.success(), "started through a symlinked keys file");
        assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "", "keys followed the symlink");

        let mut proc = Proc::spawn(&mut start(&keys_file));
        let (_, addr) = proc.listening();
        let printed = proc.lines_until("generated keys written to");
        let stdout = printed.join("\n");
        assert!(!stdout.contains("sk_test_") && !stdout.contains("esk_"), "keys in the log: {stdout}");
        let mode = std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        let written = std::fs::read_to_string(&keys_file).unwrap();
        let secret = written
            .lines()
            .find_map(|l| l.strip_prefix("TOLLGATE_SECRET_KEY="))
            .unwrap_or_else(|| panic!("{written}"));
        for name in ["TOLLGATE_PUBLISHABLE_KEY=pk_test_", "TOLLGATE_LIVE_SECRET_KEY=sk_live_", "TOLLGATE_EDGE_SYNC_KEY=esk_"] {
            assert!(written.contains(name), "{written}");
        }
        let resp = client()
            .get(format!("http://{addr}/api/v1/customers/"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        proc.kill();
    }
}

both! {
    /// Issue 15, finding 4: reported usage events do not pile up for ever. Past the retention
    /// (one second here) an event goes once its billing period has closed: the same
    /// idempotency key with another event is then a new event rather than a conflict. A
    /// customer's event in a period still running (still to be invoiced) stays.
    async fn usage_events_are_pruned_once_retained_and_invoiced(db: Db) {
        let cp = ControlPlane::start_on_with(
            db,
            &[("TOLLGATE_USAGE_EVENT_RETENTION_SECS", "1"), ("TOLLGATE_MAINTENANCE_SECS", "1")],
        );
        let api = cp.api();
        api.create_customer("lapsed").await;
        api.create_customer("billed").await;
        api.subscribe_paid("billed", "pro", "MONTHLY").await;
        let report = |customer: &'static str, resource: &'static str| {
            let api = api.clone();
            async move {
                api.post(
                    "/api/v1/report/event/",
                    json!({"customerId": customer, "eventName": "export", "idempotencyKey": format!("evt-{customer}"),
                           "timestamp": "2026-01-01 00:00:00.000000", "resourceId": resource}),
                )
                .await
            }
        };
        for customer in ["lapsed", "billed"] {
            let (status, body) = report(customer, "first").await;
            assert!(status.is_success(), "{body}");
            // The same key with another event is refused while the first is kept.
            let (status, body) = report(customer, "second").await;
            assert!(status.is_client_error(), "{customer}: {status} {body}");
        }
        wait_until("the lapsed customer's event was pruned", || async {
            report("lapsed", "second").await.0.is_success()
        })
        .await;
        let (status, body) = report("billed", "second").await;
        assert!(status.is_client_error(), "an event of a running period was pruned: {status} {body}");
    }
}

both! {
    /// Issue 15, finding 3: a well-formed key the database does not have costs one query, not
    /// one per request: the answer is remembered for a second (metrics count the requests
    /// answered from memory). A key that exists is still accepted.
    async fn an_unknown_key_repeated_costs_the_database_once(db: Db) {
        let cp = ControlPlane::start_on(db);
        let unknown = cp.api_with("sk_test_doesNotExist0000000000000000");
        for _ in 0..5 {
            let (status, body) = unknown.get("/api/v1/customers/").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
        let metrics = client().get(format!("{}/metrics", cp.url)).send().await.unwrap().text().await.unwrap();
        let hits: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tollgate_auth_unknown_key_cache_hits_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(hits >= 4.0, "answered from the database every time: {hits}");
        let (status, _) = cp.api().get("/api/v1/customers/").await;
        assert_eq!(status, StatusCode::OK);
    }
}

both! {
    /// Issue 15, finding 3: token buckets per credential and per address. Past its bucket a
    /// credential — a made-up one included — gets 429 with `Retry-After` and the error
    /// envelope, while another credential is still served; an address past its own bucket is
    /// refused whatever it sends.
    async fn requests_past_their_bucket_get_429_with_retry_after(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_RATE_LIMIT_PER_KEY", "5")]);
        let flood = cp.api_with("sk_test_madeUpKeyForTheFlood000000000");
        let mut limited = None;
        for _ in 0..40 {
            let resp = client()
                .get(format!("{}/api/v1/customers/", cp.url))
                .bearer_auth("sk_test_madeUpKeyForTheFlood000000000")
                .send()
                .await
                .unwrap();
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                limited = Some(resp);
                break;
            }
        }
        let resp = limited.expect("40 requests in a row with one key were never limited");
        let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1, "{retry}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "rate_limited", "{body}");
        drop(flood);
        let (status, _) = cp.api().get("/api/v1/customers/").await;
        assert_eq!(status, StatusCode::OK, "another credential was limited too");

        let cp = ControlPlane::start_on_with(Db::Sqlite, &[("TOLLGATE_RATE_LIMIT_PER_IP", "5")]);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(client().get(format!("{}/api/v1/customers/", cp.url)).send().await.unwrap().status());
        }
        assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    }
}

both! {
    /// Issue 15, finding 10: with `--admin-listen`, metrics and readiness (which asks the
    /// database) are served on that address only; the public listener answers them 404, and
    /// the admin address serves nothing else.
    async fn admin_listen_takes_metrics_and_readiness_off_the_public_listener(db: Db) {
        let cp = ControlPlane::start_on_with(db, &[("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")]);
        let line = cp.proc.lines_until("admin (metrics, readiness) on http://").pop().unwrap();
        let admin = line.split("on http://").nth(1).unwrap().trim().to_owned();
        for path in ["/metrics", "/readyz"] {
            let public = client().get(format!("{}{path}", cp.url)).send().await.unwrap();
            assert_eq!(public.status(), StatusCode::NOT_FOUND, "{path} on the public listener");
            let private = client().get(format!("http://{admin}{path}")).send().await.unwrap();
            assert_eq!(private.status(), StatusCode::OK, "{path} on the admin listener");
        }
        let elsewhere = client().get(format!("http://{admin}/api/v1/customers/")).send().await.unwrap();
        assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
        let (status, _) = cp.api().get("/api/v1/customers/").await;
        assert_eq!(status, StatusCode::OK);
    }
}

both! {
    /// Issue 15, finding 7: a snapshot has a total deadline, so a slow edge cannot hold the
    /// read transaction and a snapshot slot for hours. A debug failpoint stalls the first
    /// snapshot after its first frame, with one second's deadline: that stream ends, and an
    /// edge that came after it is served a whole snapshot (before, it would wait for ever).
    async fn a_stalled_snapshot_is_dropped_at_its_deadline(db: Db) {
        use futures_util::StreamExt;
        let cp = ControlPlane::start_on_with(
            db,
            &[("TOLLGATE_FAILPOINT", "snapshot-stall-once"), ("TOLLGATE_SNAPSHOT_DEADLINE_SECS", "1")],
        );
        let open = || {
            client()
                .get(format!("{}/internal/sync/stream", cp.url))
                .bearer_auth(&cp.keys.edge_sync)
                .send()
        };
        let stalled = open().await.unwrap();
        assert_eq!(stalled.status(), StatusCode::OK);
        let mut stalled = stalled.bytes_stream();
        let mut first = Vec::new();
        // The stalled stream ends once its deadline passes (the deadline here only keeps a
        // broken test from hanging).
        let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(chunk) = stalled.next().await {
                match chunk {
                    Ok(bytes) => first.extend_from_slice(&bytes),
                    Err(_) => break,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the stalled snapshot was never dropped");
        let text = String::from_utf8_lossy(&first);
        assert!(text.contains("snapshot_begin") && !text.contains("snapshot_end"), "{text}");
        // The next edge gets a whole snapshot.
        let mut next = open().await.unwrap().bytes_stream();
        let mut got = Vec::new();
        let whole = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(Ok(bytes)) = next.next().await {
                got.extend_from_slice(&bytes);
                if String::from_utf8_lossy(&got).contains("snapshot_end") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(whole.ok(), Some(true), "{}", String::from_utf8_lossy(&got));
    }
}
