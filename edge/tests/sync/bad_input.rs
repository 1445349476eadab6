//! Bad input on every endpoint the edge gained for client apps gets a clear 4xx — OFREP's
//! error shape on OFREP's endpoints, the envelope elsewhere — never a 500 or a panic: wrong
//! types, missing fields, unknown customers and flags, the wrong kind of key, another mode's
//! key, oversized bodies, bad versions, and clients that hang up mid-request.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ofrep::{LIVE, ctx, world};
use crate::standin::StandIn;
use crate::*;

const SINGLE: &str = "/ofrep/v1/evaluate/flags/sso";
const BULK: &str = "/ofrep/v1/evaluate/flags";
const STREAM: &str = "/api/v1/entitlements/stream";

/// Sends a raw request and returns the status and the body as JSON (`Null` when empty).
async fn raw(
    edge: &Edge,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{}{path}", edge.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_vec()).send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{method} {path}: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, v)
}

/// Method, path, `Authorization`, body, status, OFREP error code.
type OfrepCase<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, u16, &'a str);
/// Method, path, `Authorization`, other headers, status.
type StreamCase<'a> = (
    &'a str,
    String,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    u16,
);

fn bearer(k: &str) -> String {
    format!("Bearer {k}")
}

#[tokio::test]
async fn every_new_endpoint_answers_bad_input_with_a_clear_4xx() {
    let standin = StandIn::start(world()).await;
    let mut edge = Edge::start_with(
        &standin.url(),
        None,
        &[
            "--ofrep-body-limit-bytes",
            "1024",
            "--stream-heartbeat-ms",
            "100",
        ],
    );
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    let key = bearer(KEY);
    let sync_key = bearer("esk_standinSyncKey00000000000000");
    let live = bearer(LIVE);
    let good = ctx("c1");
    let big = format!(
        r#"{{"context":{{"targetingKey":"c1","pad":"{}"}}}}"#,
        "x".repeat(2048)
    );

    let key_as_ticket = format!("/ofrep/v1/events?ticket={KEY}");
    // (method, path, authorization, body, status, OFREP error code)
    let ofrep_cases: Vec<OfrepCase<'_>> = vec![
        ("POST", SINGLE, Some(&key), "nope", 400, "PARSE_ERROR"),
        ("POST", SINGLE, Some(&key), "", 400, "PARSE_ERROR"),
        ("POST", SINGLE, Some(&key), "{", 400, "PARSE_ERROR"),
        ("POST", SINGLE, Some(&key), "[]", 400, "INVALID_CONTEXT"),
        ("POST", SINGLE, Some(&key), "5", 400, "INVALID_CONTEXT"),
        (
            "POST",
            SINGLE,
            Some(&key),
            r#"{"context":"c1"}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "POST",
            SINGLE,
            Some(&key),
            r#"{"context":{"targetingKey":5}}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "POST",
            SINGLE,
            Some(&key),
            r#"{"context":{"targetingKey":["c1"]}}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "POST",
            SINGLE,
            Some(&key),
            "{}",
            400,
            "TARGETING_KEY_MISSING",
        ),
        (
            "POST",
            SINGLE,
            Some(&key),
            r#"{"context":{}}"#,
            400,
            "TARGETING_KEY_MISSING",
        ),
        (
            "POST",
            "/ofrep/v1/evaluate/flags/nope",
            Some(&key),
            &good,
            404,
            "FLAG_NOT_FOUND",
        ),
        (
            "POST",
            "/ofrep/v1/evaluate/flags/%FF",
            Some(&key),
            &good,
            404,
            "FLAG_NOT_FOUND",
        ),
        ("POST", SINGLE, None, &good, 401, "GENERAL"),
        (
            "POST",
            SINGLE,
            Some("Bearer pk_test_nobodyHasThisKey000001"),
            &good,
            401,
            "GENERAL",
        ),
        ("POST", SINGLE, Some("Basic !!!"), &good, 401, "GENERAL"),
        ("POST", SINGLE, Some(&sync_key), &good, 403, "GENERAL"),
        ("POST", SINGLE, Some(&key), &big, 413, "INVALID_CONTEXT"),
        ("GET", SINGLE, Some(&key), "", 405, "GENERAL"),
        ("PUT", BULK, Some(&key), &good, 405, "GENERAL"),
        (
            "POST",
            "/ofrep/v1/evaluate/flags/sso?minVersion=abc",
            Some(&key),
            &good,
            400,
            "GENERAL",
        ),
        (
            "POST",
            "/ofrep/v1/evaluate/flags/a/b",
            Some(&key),
            &good,
            404,
            "GENERAL",
        ),
        ("POST", "/ofrep/v1/nope", Some(&key), &good, 404, "GENERAL"),
        ("POST", BULK, Some(&key), "nope", 400, "PARSE_ERROR"),
        (
            "POST",
            BULK,
            Some(&key),
            r#"{"context":7}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "POST",
            BULK,
            Some(&key),
            r#"{"context":{"targetingKey":{}}}"#,
            400,
            "INVALID_CONTEXT",
        ),
        ("POST", BULK, Some(&key), "{}", 400, "TARGETING_KEY_MISSING"),
        ("POST", BULK, None, &good, 401, "GENERAL"),
        ("POST", BULK, Some(&sync_key), &good, 403, "GENERAL"),
        ("POST", BULK, Some(&key), &big, 413, "INVALID_CONTEXT"),
        ("GET", "/ofrep/v1/events", None, "", 401, "GENERAL"),
        (
            "GET",
            "/ofrep/v1/events?ticket=st_garbage",
            None,
            "",
            401,
            "GENERAL",
        ),
        ("GET", &key_as_ticket, None, "", 401, "GENERAL"),
        (
            "POST",
            "/ofrep/v1/events?ticket=x",
            None,
            "",
            405,
            "GENERAL",
        ),
    ];
    for (method, path, auth, body, status, code) in &ofrep_cases {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let (got, v) = raw(&edge, method, path, &headers, body.as_bytes()).await;
        assert_eq!(got, *status, "{method} {path} {body:.40}: {v}");
        assert_eq!(v["errorCode"], *code, "{method} {path} {body:.40}: {v}");
        assert!(
            v["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
            "{method} {path}: {v}"
        );
        let single = path
            .strip_prefix("/ofrep/v1/evaluate/flags/")
            .is_some_and(|k| !k.contains('/'));
        if single && *status != 405 {
            assert!(v["key"].is_string(), "single evaluations name the key: {v}");
        }
    }

    // The same oversized body without a declared length (chunked): still 413.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(big.as_bytes().to_vec())).collect();
    let resp = reqwest::Client::new()
        .post(format!("{}{SINGLE}", edge.url))
        .header("authorization", &key)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // A ticket for test mode does not open a live-mode stream, and tampering breaks it.
    let (_, bulk) = raw(
        &edge,
        "POST",
        BULK,
        &[("authorization", &key)],
        good.as_bytes(),
    )
    .await;
    let uri = bulk["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [
        uri.replacen("st_t.", "st_l.", 1),
        uri.replacen("ticket=st_t.", "ticket=st_t.1", 1),
        format!("{uri}&since=abc"),
        format!("{uri}&minVersion=-1"),
    ] {
        let (status, v) = raw(&edge, "GET", &bad, &[], b"").await;
        assert!(matches!(status, 400 | 401), "{bad}: {status} {v}");
        assert_eq!(v["errorCode"], "GENERAL", "{bad}");
    }
    let mut headers = vec![("last-event-id", "nine")];
    let (status, v) = raw(&edge, "GET", &uri, &headers, b"").await;
    assert_eq!((status, v["errorCode"].clone()), (400, json!("GENERAL")));

    // The entitlement stream: the envelope.
    let stream_cases: Vec<StreamCase<'_>> = vec![
        ("GET", STREAM.to_owned(), Some(&key), vec![], 400),
        (
            "GET",
            format!("{STREAM}?customerId="),
            Some(&key),
            vec![],
            400,
        ),
        ("GET", format!("{STREAM}?customerId=c1"), None, vec![], 401),
        (
            "GET",
            format!("{STREAM}?customerId=c1"),
            Some("Bearer nope"),
            vec![],
            401,
        ),
        (
            "GET",
            format!("{STREAM}?customerId=c1"),
            Some(&sync_key),
            vec![],
            403,
        ),
        (
            "GET",
            format!("{STREAM}?customerId=c1"),
            Some(&key),
            vec![("last-event-id", "abc")],
            400,
        ),
        (
            "GET",
            format!("{STREAM}?customerId=c1&minVersion=1.5"),
            Some(&key),
            vec![],
            400,
        ),
        (
            "GET",
            format!("{STREAM}?customerId=c1"),
            Some(&key),
            vec![("tollgate-min-version", "x")],
            400,
        ),
        (
            "POST",
            format!("{STREAM}?customerId=c1"),
            Some(&key),
            vec![],
            405,
        ),
        (
            "GET",
            "/api/v1/entitlements/?customerId=c1&minVersion=-3".to_owned(),
            Some(&key),
            vec![],
            400,
        ),
    ];
    for (method, path, auth, extra, status) in &stream_cases {
        headers = extra.clone();
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let (got, v) = raw(&edge, method, path, &headers, b"").await;
        assert_eq!(got, *status, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], *status, "{method} {path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    // Unknown customers are not errors: the mode's defaults, on every endpoint.
    let (status, v) = raw(
        &edge,
        "POST",
        BULK,
        &[("authorization", &key)],
        ctx("never-seen").as_bytes(),
    )
    .await;
    assert_eq!(
        (status, v["flags"][0]["reason"].clone()),
        (200, json!("STATIC"))
    );
    let mut sse = edge
        .stream(&format!("{STREAM}?customerId=never-seen"), Some(KEY), &[])
        .await;
    assert_eq!(sse.status, 200);
    assert_eq!(
        sse.next_data().await.unwrap().json()["customerId"],
        "never-seen"
    );
    drop(sse);
    // Another mode's key sees another world, not this one's customers.
    let (status, v) = raw(
        &edge,
        "POST",
        "/ofrep/v1/evaluate/flags/api-calls",
        &[("authorization", &live)],
        good.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, v["errorCode"].clone()),
        (404, json!("FLAG_NOT_FOUND"))
    );

    // Clients that hang up: mid-body, and while waiting for a version.
    for request in [
        format!(
            "POST {SINGLE} HTTP/1.1\r\nhost: x\r\nauthorization: {key}\r\ncontent-length: 100\r\n\r\n{{\"cont"
        ),
        format!(
            "POST {BULK} HTTP/1.1\r\nhost: x\r\nauthorization: {key}\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{{\"con"
        ),
        format!(
            "GET /api/v1/entitlements/?customerId=c1&minVersion=999 HTTP/1.1\r\nhost: x\r\nauthorization: {key}\r\n\r\n"
        ),
        format!(
            "GET {STREAM}?customerId=c1&minVersion=999 HTTP/1.1\r\nhost: x\r\nauthorization: {key}\r\n\r\n"
        ),
        format!("GET {STREAM}?customerId=c1 HTTP/1.1\r\nhost: x\r\nauthorization: {key}\r\n\r\n"),
    ] {
        let mut s = TcpStream::connect(edge.addr()).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        drop(s);
    }
    // Then a broken chunked body the client finishes badly.
    let mut s = TcpStream::connect(edge.addr()).await.unwrap();
    s.write_all(
        format!(
            "POST {SINGLE} HTTP/1.1\r\nhost: x\r\nauthorization: {key}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 4"),
        "a broken body gets a 4xx or a closed connection: {text}"
    );

    // Nothing waits on, or holds, what the clients left behind; the edge is up and answers.
    wait_until("abandoned reads are let go", || async {
        edge.metric("tollgate_edge_reads_waiting").await == 0.0
            && edge.metric("tollgate_edge_streams").await == 0.0
    })
    .await;
    let (status, _, v) = edge.post(SINGLE, Some(KEY), &good, &[]).await;
    assert_eq!((status, v["value"].clone()), (200, json!(true)));
    assert!(edge.alive());
    let metrics = edge.metrics().await;
    assert!(
        !metrics.contains("status=\"500\""),
        "no request answered 500:\n{metrics}"
    );
}

/// Issue 15, finding 6: a control plane (broken, or not ours) that sends one endless line
/// cannot make the edge buffer it: past `--max-sync-frame-bytes` the edge drops the stream and
/// reconnects. The stand-in offers up to 64 MiB in one line and counts what the edge took;
/// before the limit, the edge took all of it.
#[tokio::test]
async fn an_endless_sync_line_is_cut_off_at_the_frame_limit() {
    const OFFERED: usize = 64 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _edge = Edge::start_with(&url, None, &["--max-sync-frame-bytes", "65536"]);
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut head = [0u8; 4096];
    let _ = socket.read(&mut head).await.unwrap();
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let block = vec![b'a'; 64 << 10];
    let mut taken = 0;
    while taken < OFFERED {
        match socket.write_all(&block).await {
            Ok(()) => taken += block.len(),
            Err(_) => break,
        }
    }
    assert!(taken < OFFERED, "the edge took a {taken}-byte line");
    // It comes back for a fresh stream.
    let (_again, _) = listener.accept().await.unwrap();
}
