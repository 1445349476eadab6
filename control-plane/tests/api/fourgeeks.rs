//! The 4geeks dialect, with the seed's own requests: Basic auth, snake_case, its envelopes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

both! {
    async fn fourgeeks_create_pay_retrieve_list_and_cancel(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let edge = cp.edge();
        edge.wait_ready().await;
        let (_, pro) = api.get("/api/v1/plans/pro/").await;
        let price_id = pro["prices"][0]["id"].as_str().unwrap().to_owned();
        let plan_key = pro["publicKey"].as_str().unwrap().to_owned();
        api.create_customer("cus_1234567890").await;

        // The seed's create request, verbatim but for the price id.
        let (status, created) = api
            .post(
                "/v1/subscriptions",
                json!({"plan_id": price_id, "customer_id": "cus_1234567890", "quantity": 1,
                       "return_url": "https://example.com/subscription-result"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["code"], 201);
        assert_eq!(created["title"], "Subscription created");
        assert_eq!(created["data"]["test"], true);
        let id = created["data"]["subscription_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let checkout = created["data"]["checkout_url"].as_str().unwrap().to_owned();

        // Pending until paid, and granting nothing.
        let (status, one) = api.get(&format!("/v1/subscriptions/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["status"], "pending");
        assert_eq!(one["plan_id"], price_id.as_str());
        assert!(!has_access(
            &edge.entitlements("cus_1234567890").await,
            "export-data"
        ));

        let session = checkout.trim_end_matches('/').rsplit('/').next().unwrap();
        let (status, _) = api
            .post(&format!("/api/v1/checkout/{session}/complete/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, one) = api.get(&format!("/v1/subscriptions/{id}")).await;
        assert_eq!(one["status"], "active");
        assert!(one["next_billing_date"].is_string());
        assert!(one["current_period_end"].is_string());
        wait_until("granted at the edge", || async {
            has_access(&edge.entitlements("cus_1234567890").await, "export-data")
        })
        .await;

        // List with 4geeks' pagination, filters, and the list by public plan key.
        let (_, list) = api.get("/v1/subscriptions?page=1&page_size=10").await;
        assert_eq!(
            (
                list["count"].as_i64(),
                list["current_page"].as_i64(),
                list["total_pages"].as_i64()
            ),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(list["results"][0]["subscription_id"], id.as_str());
        let (_, none) = api.get("/v1/subscriptions?test=false").await;
        assert_eq!(none["count"], 0);
        let (_, by_status) = api
            .get(&format!(
                "/v1/subscriptions?status=active&plan_id={price_id}"
            ))
            .await;
        assert_eq!(by_status["count"], 1);
        let (status, by_plan) = api.get(&format!("/v1/subscriptions/{plan_key}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(by_plan[0]["subscription_id"], id.as_str());

        // A second create for the same group is a conflict: plan changes go through update.
        let (_, enterprise) = api.get("/api/v1/plans/enterprise/").await;
        let enterprise_monthly = enterprise["prices"][0]["id"].as_str().unwrap().to_owned();
        let (status, body) = api
            .post("/v1/subscriptions", json!({"plan_id": enterprise_monthly, "customer_id": "cus_1234567890", "return_url": "https://example.com/r"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        // Cancel, 4geeks style.
        let (status, gone) = api
            .call(Method::DELETE, &format!("/v1/subscriptions/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{gone}");
        assert_eq!(gone["title"], "Subscription cancelled");
        assert_eq!(gone["subscription_id"], id.as_str());
        wait_until("revoked at the edge", || async {
            !has_access(&edge.entitlements("cus_1234567890").await, "export-data")
        })
        .await;
        let (status, again) = api
            .call(Method::DELETE, &format!("/v1/subscriptions/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_envelope(status, &again, "cancel twice");

        // The seed's error shapes.
        let (status, body) = api
            .post(
                "/v1/subscriptions",
                json!({"customer_id": "x", "return_url": "https://e.example.com/"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["message"], "Missing required field: plan_id");
        let (status, body) = api.get("/v1/subscriptions/sub_abc21d23").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["message"], "Subscription not found");
        let (status, body) = api
            .post(
                "/v1/subscriptions",
                json!({"plan_id": "ghost", "return_url": "https://e.example.com/"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = api
            .post(
                "/v1/subscriptions",
                json!({"plan_id": price_id, "return_url": "/relative"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let resp = client()
            .get(format!("{}/v1/subscriptions", cp.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        // A guest create (no customer_id) makes a customer.
        let (status, guest) = api
            .post(
                "/v1/subscriptions",
                json!({"plan_id": plan_key_or(&pro), "return_url": "https://e.example.com/"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "pro has two prices, so its public key alone is ambiguous: {guest}"
        );
        let (status, guest) = api
            .post(
                "/v1/subscriptions",
                json!({"plan_id": price_id, "return_url": "https://e.example.com/"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{guest}");
    }
}

fn plan_key_or(plan: &serde_json::Value) -> String {
    plan["publicKey"].as_str().unwrap_or_default().to_owned()
}
