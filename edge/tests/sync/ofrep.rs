//! OFREP at the edge: the mapping (booleans, integers, metadata), reasons and variants,
//! missing flags and targeting keys, customer tokens, the bulk answer's `ETag` / 304 and its
//! event stream, which sends `refetchEvaluation` when the customer changes.

use serde_json::{Value, json};
use tollgate_shared::sync::Change;
use tollgate_shared::token::{self, TokenClaims};
use tollgate_shared::{Entitlement, FeatureType, KeyKind, Mode};

use crate::standin::{StandIn, World, customer, key, key_of};
use crate::*;

pub const SECRET: &str = "sk_test_standinSecret00000000001";
pub const LIVE: &str = "pk_live_standinLiveKey0000000001";

pub fn world() -> World {
    let mut w = World::at(
        5,
        vec![customer("c1", 40), customer("c2", 100)],
        vec![
            key(KEY),
            key_of(SECRET, Mode::Test, KeyKind::Secret),
            key_of(LIVE, Mode::Live, KeyKind::Publishable),
        ],
    );
    w.defaults = vec![Entitlement {
        feature_id: "sso".into(),
        feature_type: FeatureType::Boolean,
        has_access: false,
        usage_limit: Default::default(),
        current_usage: None,
        remaining: None,
        reset_at: None,
        hard_limit: None,
    }];
    w
}

pub fn ctx(customer: &str) -> String {
    json!({"context": {"targetingKey": customer, "email": "a@example.com", "plan": ["x"]}})
        .to_string()
}

#[tokio::test]
async fn single_evaluations_follow_the_mapping() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start(&standin.url(), None);
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    let eval = |key: &'static str, who: &'static str| {
        let edge = &edge;
        async move {
            edge.post(
                &format!("/ofrep/v1/evaluate/flags/{key}"),
                Some(KEY),
                &ctx(who),
                &[],
            )
            .await
        }
    };

    let (status, headers, v) = eval("api-calls", "c1").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        v,
        json!({"key":"api-calls","value":true,"reason":"TARGETING_MATCH","variant":"on",
            "metadata":{"featureType":"METER","usageLimit":100,"currentUsage":40,"remaining":60,
                "resetAt":"2026-12-01T00:00:00Z","hardLimit":true}})
    );
    let (_, _, v) = eval("api-calls", "c2").await;
    assert_eq!(
        (v["value"].clone(), v["variant"].clone()),
        (json!(false), json!("off"))
    );
    let (_, _, v) = eval("api-calls.limit", "c1").await;
    assert_eq!(
        v,
        json!({"key":"api-calls.limit","value":100,"reason":"TARGETING_MATCH","variant":"limited",
            "metadata":{"featureType":"METER"}})
    );
    let (_, _, v) = eval("api-calls.remaining", "c1").await;
    assert_eq!(v["value"], 60);
    let (_, _, v) = eval("sso", "c1").await;
    assert_eq!(
        v,
        json!({"key":"sso","value":true,"reason":"TARGETING_MATCH","variant":"on",
            "metadata":{"featureType":"BOOLEAN"}})
    );
    // Percent-encoded keys are decoded (newer providers encode them).
    let (status, _, v) = eval("api%2Dcalls", "c1").await;
    assert_eq!((status, v["key"].clone()), (200, json!("api-calls")));

    // A customer the edge never heard of gets the mode's defaults, as the GET does.
    let (status, _, v) = eval("sso", "somebody-new").await;
    assert_eq!(
        (status, v["value"].clone(), v["reason"].clone()),
        (200, json!(false), json!("STATIC"))
    );

    // Missing flags, for known and unknown customers; flags a feature does not have.
    for (key, who) in [
        ("nope", "c1"),
        ("api-calls", "somebody-new"),
        ("sso.limit", "c1"),
        ("sso.remaining", "c1"),
        ("api-calls.other", "c1"),
    ] {
        let (status, _, v) = eval(key, who).await;
        assert_eq!(status, 404, "{key} for {who}");
        assert_eq!(v["key"], key);
        assert_eq!(v["errorCode"], "FLAG_NOT_FOUND");
        assert!(v["errorDetails"].as_str().is_some_and(|d| !d.is_empty()));
    }

    // The targeting key is the customer: without it, TARGETING_KEY_MISSING.
    for body in [
        r#"{"context":{}}"#,
        r#"{"context":{"targetingKey":""}}"#,
        r#"{"context":null}"#,
        r#"{}"#,
    ] {
        let (status, _, v) = edge
            .post("/ofrep/v1/evaluate/flags/sso", Some(KEY), body, &[])
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            v,
            json!({"key":"sso","errorCode":"TARGETING_KEY_MISSING",
                "errorDetails": v["errorDetails"].clone()}),
            "{body}"
        );
    }

    // A secret key reads too (server SDKs), and through OFREP's X-API-Key header.
    let (status, _, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags/sso",
            Some(SECRET),
            &ctx("c1"),
            &[],
        )
        .await;
    assert_eq!((status, v["value"].clone()), (200, json!(true)));
    let (status, _, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags/sso",
            None,
            &ctx("c1"),
            &[("x-api-key", KEY)],
        )
        .await;
    assert_eq!((status, v["value"].clone()), (200, json!(true)));
    // The live key sees live mode, where c1 does not exist.
    let (status, _, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags/api-calls",
            Some(LIVE),
            &ctx("c1"),
            &[],
        )
        .await;
    assert_eq!(
        (status, v["errorCode"].clone()),
        (404, json!("FLAG_NOT_FOUND"))
    );
}

#[tokio::test]
async fn customer_tokens_evaluate_their_own_customer_only() {
    let signing = token::new_signing_key();
    let mut w = world();
    w.token_keys = vec![token::encode_verifying_key(&signing.verifying_key())];
    let standin = StandIn::start(w).await;
    let edge = Edge::start(&standin.url(), None);
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;
    let now = (tollgate_edge::store::now_ms() / 1000) as i64;
    let ct = token::mint(
        &signing,
        &TokenClaims {
            m: Mode::Test,
            c: "c1".into(),
            e: now + 600,
        },
    );
    // No targeting key needed; the token's customer.
    let (status, _, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags/api-calls.remaining",
            Some(&ct),
            r#"{"context":{}}"#,
            &[],
        )
        .await;
    assert_eq!((status, v["value"].clone()), (200, json!(60)));
    let (status, _, v) = edge
        .post("/ofrep/v1/evaluate/flags/sso", Some(&ct), &ctx("c1"), &[])
        .await;
    assert_eq!((status, v["value"].clone()), (200, json!(true)));
    let (status, _, v) = edge
        .post("/ofrep/v1/evaluate/flags/sso", Some(&ct), &ctx("c2"), &[])
        .await;
    assert_eq!((status, v["errorCode"].clone()), (403, json!("GENERAL")));
    // The bulk answer's stream URL carries the token itself.
    let (status, _, v) = edge
        .post("/ofrep/v1/evaluate/flags", Some(&ct), "{}", &[])
        .await;
    assert_eq!(status, 200);
    let uri = v["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .unwrap();
    assert!(uri.contains(&format!("ticket={ct}")), "{uri}");
    let mut sse = edge.stream(uri, None, &[]).await;
    assert_eq!(sse.status, 200);
    assert!(sse.next_event().await.is_some());
}

fn flags(v: &Value) -> Vec<(String, Value)> {
    v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap().to_owned(), f["value"].clone()))
        .collect()
}

#[tokio::test]
async fn bulk_evaluation_has_an_etag_and_an_event_stream_that_says_when_to_refetch() {
    let standin = StandIn::start(world()).await;
    let edge = Edge::start(&standin.url(), None);
    wait_until("snapshot", || async {
        edge.ready().await.1["version"] == 5
    })
    .await;

    let (status, headers, v) = edge
        .post("/ofrep/v1/evaluate/flags", Some(KEY), &ctx("c1"), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        flags(&v),
        vec![
            ("api-calls".into(), json!(true)),
            ("api-calls.limit".into(), json!(100)),
            ("api-calls.remaining".into(), json!(60)),
            ("sso".into(), json!(true)),
        ]
    );
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let streams = v["eventStreams"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["type"], "sse");
    assert!(
        streams[0].get("url").is_none(),
        "exactly one of url and endpoint"
    );
    let uri = streams[0]["endpoint"]["requestUri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uri.starts_with("/ofrep/v1/events?ticket=st_t."), "{uri}");
    assert!(!uri.contains(KEY), "the key itself never goes into a URL");

    // Unchanged: 304, and the same answer (URL included) once more.
    let (status, _, v304) = edge
        .post(
            "/ofrep/v1/evaluate/flags",
            Some(KEY),
            &ctx("c1"),
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!((status, v304), (304, Value::Null));
    let (_, again, same) = edge
        .post("/ofrep/v1/evaluate/flags", Some(KEY), &ctx("c1"), &[])
        .await;
    assert_eq!(again["etag"].to_str().unwrap(), etag);
    assert_eq!(same, v);

    // The advertised stream: nothing to refetch yet (an id-only event), then a change.
    let mut sse = edge.stream(&uri, None, &[]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(
        sse.headers["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let first = sse.next_event().await.unwrap();
    assert_eq!((first.data.clone(), first.version()), (None, 5));
    // Another customer's change: no notice for c1.
    standin.commit(vec![Change::Customer(customer("c2", 3))]);
    let v7 = standin.commit(vec![Change::Customer(customer("c1", 41))]);
    let notice = sse.next_data().await.unwrap();
    assert_eq!(notice.version(), v7);
    assert_eq!(notice.event.as_deref(), Some("message"));
    assert_eq!(
        notice.json(),
        json!({"type":"refetchEvaluation","etag": v7.to_string()})
    );
    // The refetch ADR-0008 makes: flagConfigEtag is the version; the old ETag no longer holds.
    let (status, _, v) = edge
        .post(
            &format!("/ofrep/v1/evaluate/flags?flagConfigEtag={v7}"),
            Some(KEY),
            &ctx("c1"),
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(flags(&v)[2], ("api-calls.remaining".into(), json!(59)));

    // A stream opened from an answer made before a change still hears of it (`since`).
    let stale_uri = uri.clone();
    standin.commit(vec![Change::Customer(customer("c1", 42))]);
    wait_until("delta", || async { edge.ready().await.1["version"] == 8 }).await;
    let mut late = edge.stream(&stale_uri, None, &[]).await;
    let notice = late.next_event().await.unwrap();
    assert_eq!(notice.version(), 8);
    assert!(
        notice.data.is_some(),
        "a change after `since` is a refetch notice"
    );

    // An unknown customer's bulk answer: the defaults, STATIC.
    let (status, _, v) = edge
        .post(
            "/ofrep/v1/evaluate/flags",
            Some(KEY),
            &ctx("new-person"),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["flags"][0]["reason"], "STATIC");
    assert_eq!(flags(&v), vec![("sso".into(), json!(false))]);
}
