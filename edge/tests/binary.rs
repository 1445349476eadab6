//! The edge binary on its own: before any snapshot it is alive but not ready, and refuses
//! entitlement reads with a 503 envelope instead of guessing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn without_a_control_plane_the_edge_is_alive_but_not_ready() {
    // A port nothing listens on: bind, note it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sync-key",
            "esk_aaaaaaaaaaaaaaaa",
            "--backoff-max-ms",
            "200",
        ])
        .arg("--control-plane-url")
        .arg(format!("http://{dead}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    let client = reqwest::Client::new();

    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["hasSnapshot"], false);
    let ents = client
        .get(format!("http://{addr}/api/v1/entitlements/?customerId=a"))
        .bearer_auth("pk_test_aaaaaaaaaaaaaaaa")
        .send()
        .await
        .unwrap();
    assert_eq!(ents.status(), 503);
    let body: serde_json::Value = ents.json().await.unwrap();
    assert_eq!(body["error"]["code"], 503);
    let _ = child.kill();
    let _ = child.wait();
}
