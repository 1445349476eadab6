//! TLS both ways: the edge serves HTTPS only with `--tls-cert/--tls-key`, and dials an
//! `https://` control plane it verifies with `--control-plane-ca` (certificates made here, at
//! run time, by rcgen).

use std::time::Duration;

use tollgate_shared::server::TlsConfig;

use crate::standin::{StandIn, World, customer, key};
use crate::*;

#[tokio::test]
async fn https_to_the_edge_and_from_the_edge_to_the_control_plane() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key_pem) = (made.cert.pem(), made.signing_key.serialize_pem());
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();

    let tls = TlsConfig::from_pem(cert.as_bytes(), key_pem.as_bytes()).unwrap();
    let standin = StandIn::start_with(
        World {
            version: 5,
            customers: vec![customer("c1", 3)],
            keys: vec![key(KEY)],
            deltas: vec![],
            oldest_resumable: 5,
            up: true,
            reorder: false,
            token_keys: vec![],
            defaults: vec![],
        },
        Some(tls),
    )
    .await;
    let (cert_arg, key_arg) = (
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    );
    let edge = Edge::start_with(
        &standin.url(),
        None,
        &[
            "--control-plane-ca",
            &cert_arg,
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
        ],
    );
    assert!(edge.url.starts_with("https://"), "{}", edge.url);
    let port = edge.url.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    wait_until("synced over HTTPS", || async {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        }
    })
    .await;
    let resp = client
        .get(format!("{base}/api/v1/entitlements/?customerId=c1"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(current_usage(&resp.bytes().await.unwrap()), 3);
    // HTTPS only.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err());
}

#[tokio::test]
async fn an_untrusted_control_plane_certificate_is_refused() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let tls = TlsConfig::from_pem(
        made.cert.pem().as_bytes(),
        made.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let standin = StandIn::start_with(
        World {
            version: 5,
            customers: vec![customer("c1", 3)],
            keys: vec![key(KEY)],
            deltas: vec![],
            oldest_resumable: 5,
            up: true,
            reorder: false,
            token_keys: vec![],
            defaults: vec![],
        },
        Some(tls),
    )
    .await;
    // No --control-plane-ca: the self-signed certificate is not trusted.
    let edge = Edge::start(&standin.url(), None);
    wait_until("a refused handshake", || async {
        edge.said("sync stream lost")
    })
    .await;
    assert_eq!(edge.ready().await.1["hasSnapshot"], false);
    assert!(standin.requests().is_empty());
}
