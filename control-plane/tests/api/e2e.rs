//! From "create a customer" to "the edge says hasAccess: true", as the README walks it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

both! {
    async fn checkout_paid_reaches_the_edge(db: Db) {
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();

        api.create_customer("user-123").await;
        wait_until("edge knows user-123", || async {
            edge.entitlements("user-123").await["customerId"] == "user-123"
        })
        .await;
        assert!(
            !has_access(&edge.entitlements("user-123").await, "export-data"),
            "free plan has no export"
        );

        let sub = api.subscribe_paid("user-123", "pro", "MONTHLY").await;
        assert_eq!(sub["status"], "active");
        assert_eq!(sub["plan"]["identifier"], "pro");
        assert_eq!(sub["amount"], "49.00");
        assert_eq!(sub["recurrence"], "month");

        wait_until("export-data granted at the edge", || async {
            has_access(&edge.entitlements("user-123").await, "export-data")
        })
        .await;
        let ents = edge.entitlements("user-123").await;
        let api_calls = ents["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["featureId"] == "api-calls")
            .unwrap()
            .clone();
        assert_eq!(api_calls["usageLimit"], 10000);
        assert_eq!(api_calls["remaining"], 10000);
        assert_eq!(api_calls["featureType"], "METER");
        assert!(api_calls["resetAt"].is_string());

        // Kelviq's list shape and filters.
        let (status, list) = api.get("/api/v1/subscriptions/?customer_id=user-123").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["count"], 1);
        assert_eq!(list["results"][0]["customerId"], "user-123");
        let (_, none) = api
            .get("/api/v1/subscriptions?customer_id=user-123&status=canceled")
            .await;
        assert_eq!(none["count"], 0);
    }
}

both! {
    async fn edge_drop_in_variants_etag_and_cors(db: Db) {
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        api.create_customer("dropin").await;
        api.subscribe_paid("dropin", "pro", "YEARLY").await;
        wait_until("pro at edge", || async {
            has_access(&edge.entitlements("dropin").await, "export-data")
        })
        .await;
        let pk = Some(cp.keys.publishable.as_str());

        // Kelviq SDK style: no trailing slash, snake_case, feature_id narrows the list.
        let (status, one) = edge
            .get(
                "/api/v1/entitlements?customer_id=dropin&feature_id=export-data",
                pk,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["entitlements"].as_array().unwrap().len(), 1);
        assert_eq!(one["customerId"], "dropin");
        // One feature by path.
        let (status, feat) = edge
            .get("/api/v1/entitlements/team-size/?customerId=dropin", pk)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(feat["usageLimit"], 5);
        // Server SDKs call the edge with their secret key.
        let (status, _) = edge
            .get(
                "/api/v1/entitlements/?customerId=dropin",
                Some(&cp.keys.secret),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // Unknown customers get the default plans' entitlements.
        let stranger = edge.entitlements("never-seen").await;
        assert_eq!(stranger["customerId"], "never-seen");
        assert!(!has_access(&stranger, "export-data"));
        assert!(has_access(&stranger, "api-calls"));

        // ETag / If-None-Match, and CORS.
        let url = format!("{}/api/v1/entitlements/?customerId=dropin", edge.url);
        let resp = client()
            .get(&url)
            .bearer_auth(&cp.keys.publishable)
            .send()
            .await
            .unwrap();
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let resp = client()
            .get(&url)
            .bearer_auth(&cp.keys.publishable)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let resp = client()
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(
            resp.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("Authorization")
        );

        // Metrics and health.
        let metrics = client()
            .get(format!("{}/metrics", edge.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("tollgate_edge_entitlement_requests_total"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tollgate_edge_sync_connected 1"),
            "{metrics}"
        );
        let (status, _) = edge.get("/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
    }
}

both! {
    async fn keys_tokens_and_modes_are_enforced_at_the_edge(db: Db) {
        let cp = ControlPlane::start_on(db);
        let edge = cp.edge();
        edge.wait_ready().await;
        let api = cp.api();
        api.create_customer("alice").await;
        api.create_customer("bob").await;
        api.subscribe_paid("alice", "pro", "MONTHLY").await;
        wait_until("alice is pro", || async {
            has_access(&edge.entitlements("alice").await, "export-data")
        })
        .await;

        // A new publishable key works at the edge once synced; revoked, it stops working.
        let (status, made) = api
            .post(
                "/api/v1/api-keys/",
                json!({"kind": "publishable", "name": "web"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let new_pk = made["key"].as_str().unwrap().to_owned();
        wait_until("new key accepted", || async {
            edge.get("/api/v1/entitlements/?customerId=alice", Some(&new_pk))
                .await
                .0
                == StatusCode::OK
        })
        .await;
        let (status, _) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/api-keys/{}/", made["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        wait_until("revoked key refused", || async {
            edge.get("/api/v1/entitlements/?customerId=alice", Some(&new_pk))
                .await
                .0
                == StatusCode::UNAUTHORIZED
        })
        .await;

        // A customer token reads its own customer and nobody else.
        let (status, tok) = api.post("/api/v1/customers/alice/token/", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{tok}");
        let token = tok["token"].as_str().unwrap();
        let (status, own) = edge.get("/api/v1/entitlements/", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{own}");
        assert_eq!(own["customerId"], "alice");
        let (status, body) = edge
            .get("/api/v1/entitlements/?customerId=bob", Some(token))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_envelope(status, &body, "token for another customer");

        // Live mode is another world: alice does not exist there.
        let live = cp.api_with(&cp.keys.live_secret);
        let (status, body) = live.get("/api/v1/customers/alice/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_envelope(status, &body, "live key reading a test customer");
        let (status, subs) = live.get("/api/v1/subscriptions/?customer_id=alice").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(subs["count"], 0);
    }
}

both! {
    async fn sigterm_drains_and_exits_zero(db: Db) {
        let mut cp = ControlPlane::start_on(db);
        let mut edge = cp.edge();
        edge.wait_ready().await;
        assert!(edge.proc.terminate().success());
        assert!(cp.proc.terminate().success());
    }
}
