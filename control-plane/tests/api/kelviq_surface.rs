//! Kelviq's surface beyond subscriptions, through HTTP on both engines: archived customers,
//! license keys at their limit, event metering, refunds and balances, Kelviq-signed webhooks.

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;
use crate::webhooks::{start_receiver, types};

both! {
    async fn archived_customers_leave_lists_keep_history_and_fall_back_to_defaults(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let edge = cp.edge();
        api.create_customer("arch-1").await;
        api.create_customer("arch-2").await;
        card(&api, "arch-1", "pm_card_visa").await;
        let sub = subscribed(&api, "arch-1", "pro", "MONTHLY").await;
        edge.wait_ready().await;
        wait_until("pro at the edge", || async {
            has_access(&edge.entitlements("arch-1").await, "export-data")
        })
        .await;

        let (status, body) = api.call(Method::DELETE, "/api/v1/customers/arch-1/", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["message"], "Customer archived successfully.");
        assert_eq!(body["customer"]["archived"], true);
        // Again: the same answer (archiving is idempotent).
        let (status, _) = api.call(Method::DELETE, "/api/v1/customers/arch-1", None).await;
        assert_eq!(status, StatusCode::OK);

        let (_, list) = api.get("/api/v1/customers/?page_size=100").await;
        let ids: Vec<&str> = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["customerId"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&"arch-1") && ids.contains(&"arch-2"), "{list}");
        assert_eq!(list["count"], 1);
        // History stays: the customer, their subscription (now canceled) and their invoice.
        let (status, c) = api.get("/api/v1/customers/arch-1/").await;
        assert_eq!((status, c["archived"].as_bool()), (StatusCode::OK, Some(true)));
        let (_, s) = api.get(&format!("/api/v1/subscriptions/{sub}/")).await;
        assert_eq!(s["status"], "canceled");
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=arch-1").await;
        assert_eq!(invoices["count"], 1, "{invoices}");
        // The edge serves the default plans' entitlements.
        wait_until("defaults at the edge", || async {
            !has_access(&edge.entitlements("arch-1").await, "export-data")
        })
        .await;
        // The default plans' grants; meters keep counting in the customer's own windows.
        let grants = |v: Value| -> Vec<Value> {
            v["entitlements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| json!([e["featureId"], e["hasAccess"], e["usageLimit"]]))
                .collect()
        };
        assert_eq!(
            grants(edge.entitlements("arch-1").await),
            grants(edge.entitlements("never-seen").await)
        );
        // Nothing new starts for them.
        let (status, body) = api
            .post("/api/v1/subscribe/", json!({"customerId": "arch-1", "planId": "pro", "chargePeriod": "MONTHLY"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_envelope(status, &body, "archived subscribe");
        let (status, body) = api
            .post("/api/v1/report/usage/", json!({"customerId": "arch-1", "featureId": "api-calls", "value": 1, "behaviour": "DELTA"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = api.call(Method::DELETE, "/api/v1/customers/nobody/", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Another mode's key does not see them.
        let live = cp.api_with(&cp.keys.live_secret);
        let (status, _) = live.call(Method::DELETE, "/api/v1/customers/arch-2/", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

both! {
    async fn license_keys_stop_at_their_activation_limit(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (status, plan) = api
            .post(
                "/api/v1/plans/",
                json!({"identifier": "desktop", "name": "Desktop", "group": "desktop",
                       "prices": [{"chargePeriod": "MONTHLY", "amount": "9.00", "currency": "usd"}],
                       "licenseActivationLimit": 2}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{plan}");
        assert_eq!(plan["licenseActivationLimit"], 2);
        api.create_customer("lic-1").await;
        card(&api, "lic-1", "pm_card_visa").await;
        let (status, sub) = api
            .post("/api/v1/subscriptions/create/", json!({"plan_identifier": "desktop", "charge_period": "MONTHLY", "customer_id": "lic-1"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        let key = sub["license"][0]["licenseKey"].as_str().unwrap().to_owned();
        assert_eq!(sub["license"][0]["activationLimit"], 2);

        let activate = |name: &'static str| {
            let api = api.clone();
            let key = key.clone();
            async move {
                api.post("/api/v1/license/activate/", json!({"license_key": key, "instance_name": name, "metadata": {"host": name}}))
                    .await
            }
        };
        let (status, a) = activate("laptop").await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        assert_eq!(a["license"]["activationUsage"], 1);
        assert_eq!(a["license"]["customer"]["customerId"], "lic-1");
        assert_eq!(a["license"]["subscription"]["billingType"], "SUBSCRIPTION");
        let first = a["instanceId"].as_str().unwrap().to_owned();
        let (status, _) = activate("desktop").await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = activate("third").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("limit"), "{body}");

        let (status, v) = api
            .post("/api/v1/license/validate/", json!({"licenseKey": key, "instanceId": first}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(true), Some("VALID")));
        assert_eq!(v["metadata"]["host"], "laptop");

        let (status, d) = api
            .post("/api/v1/license/deactivate/", json!({"licenseKey": key, "instanceId": first}))
            .await;
        assert_eq!(status, StatusCode::OK, "{d}");
        assert!(d["deactivatedAt"].is_string());
        let (status, body) = api
            .post("/api/v1/license/deactivate/", json!({"licenseKey": key, "instanceId": first}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (_, v) = api
            .post("/api/v1/license/validate/", json!({"licenseKey": key, "instanceId": first}))
            .await;
        assert_eq!(v["code"], "INSTANCE_NOT_FOUND");
        let (status, _) = activate("third").await;
        assert_eq!(status, StatusCode::CREATED, "a freed activation can be used again");

        let (_, v) = api.post("/api/v1/license/validate/", json!({"licenseKey": "NOPE-NOPE"})).await;
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("NOT_FOUND")));
        // Another mode does not know the key.
        let live = cp.api_with(&cp.keys.live_secret);
        let (_, v) = live.post("/api/v1/license/validate/", json!({"licenseKey": key})).await;
        assert_eq!(v["code"], "NOT_FOUND");

        // The subscription ends: the key stops validating and activating.
        let id = sub["id"].as_str().unwrap();
        let (status, c) = api
            .post(&format!("/api/v1/subscriptions/{id}/cancel/"), json!({"cancellationType": "IMMEDIATE"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert!(c["message"].is_string());
        let (_, v) = api.post("/api/v1/license/validate/", json!({"licenseKey": key})).await;
        assert_eq!((v["valid"].as_bool(), v["code"].as_str()), (Some(false), Some("EXPIRED")));
        let (status, _) = activate("after").await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
}

both! {
    async fn reported_events_move_meters_once_per_key(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let edge = cp.edge();
        let (status, f) = api
            .post("/api/v1/features/", json!({"identifier": "exports", "name": "Exports", "type": "METER", "eventName": "export.done"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{f}");
        assert_eq!(f["eventName"], "export.done");
        let (status, p) = api
            .post("/api/v1/plans/", json!({"identifier": "export-free", "name": "Exports", "group": "exports",
                  "isDefault": true, "features": [{"featureId": "exports", "usageLimit": 2}]}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        api.create_customer("ev-1").await;
        let event = |key: &str, name: &str| {
            json!({"customer_id": "ev-1", "event_name": name, "idempotency_key": key,
                   "timestamp": "2026-04-01 10:00:00.000000", "properties": {"format_Type": "csv"}})
        };
        let (status, r) = api.post("/api/v1/report/event/", event("k1", "export.done")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["duplicate"], false);
        assert_eq!(r["meters"][0]["currentUsage"], 1);
        assert_eq!(r["properties"]["format_Type"], "csv", "properties are stored as sent");
        assert!(r["orgId"].is_string());
        // The same event again: answered, not counted.
        let (status, r) = api.post("/api/v1/report/event/", event("k1", "export.done")).await;
        assert_eq!((status, r["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{r}");
        // The same key for another event: refused.
        let (status, r) = api.post("/api/v1/report/event/", event("k1", "other.event")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{r}");
        assert_envelope(status, &r, "reused key");
        // An event no meter counts is stored and moves nothing.
        let (status, r) = api.post("/api/v1/report/event/", event("k2", "page.view")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["meters"], json!([]));
        let (status, r) = api.post("/api/v1/report/event/", event("k3", "export.done")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["meters"][0]["currentUsage"], 2);
        assert_eq!(r["meters"][0]["hasAccess"], false);
        edge.wait_ready().await;
        wait_until("the event-metered limit at the edge", || async {
            let e = edge.entitlements("ev-1").await;
            e["entitlements"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["featureId"] == "exports" && x["currentUsage"] == 2 && x["hasAccess"] == false)
        })
        .await;
        // Usage reported directly adds to the same meter.
        let (status, u) = api
            .post("/api/v1/report/usage/", json!({"value": 0, "customer_id": "ev-1", "feature_id": "exports", "behaviour": "SET"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{u}");
        assert_eq!((u["currentUsage"].as_i64(), u["eventName"].as_str()), (Some(0), Some("$usage.reported")));
        let (status, r) = api.post("/api/v1/report/event/", event("k4", "export.done")).await;
        assert_eq!((status, r["meters"][0]["currentUsage"].as_i64()), (StatusCode::OK, Some(1)));
        let (status, r) = api
            .post("/api/v1/report/event/", json!({"customerId": "ghost", "eventName": "export.done", "idempotencyKey": "g1", "timestamp": "2026-04-01 10:00:00.000000"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    }
}

both! {
    async fn refunds_charges_transactions_and_balances(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (url, receiver) = start_receiver(0).await;
        let (status, ep) = api
            .post("/api/v1/webhook-endpoints/", json!({"url": url, "events": ["refund.created"]}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        let clock = clocked_with_card(&api, "buyer", "2026-04-01T00:00:00Z").await;
        // A one-off charge: the ONE_TIME add-on, on the card on file.
        let (status, charge) = api
            .post("/api/v1/charges/", json!({"plan_identifier": "sso-lifetime", "charge_period": "ONE_TIME", "customer_id": "buyer"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{charge}");
        assert_eq!(charge["billingType"], "ONE_TIME");
        assert_eq!(charge["invoice"]["status"], "paid");
        assert_eq!(charge["invoice"]["total"], "299.00");
        let order = charge["orderId"].as_str().unwrap().to_owned();
        // Buying the same group again is refused; no card is a 402.
        let (status, _) = api
            .post("/api/v1/charges/", json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME", "customerId": "buyer"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        api.create_customer("no-card").await;
        let (status, body) = api
            .post("/api/v1/charges/", json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME", "customerId": "no-card"}))
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert_envelope(status, &body, "no card");
        // A declined card: 402 and nothing bought.
        api.create_customer("declined").await;
        let (status, _) = api
            .post("/api/v1/customers/declined/payment-methods/", json!({"token": "pm_card_chargeCustomerFail"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = api
            .post("/api/v1/charges/", json!({"planIdentifier": "sso-lifetime", "chargePeriod": "ONE_TIME", "customerId": "declined", "customAmount": 10.5, "currencyCode": "USD"}))
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
        let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=declined").await;
        assert!(
            subs["results"].as_array().unwrap().iter().all(|s| s["status"] == "incomplete_expired"),
            "a declined charge bought something: {subs}"
        );

        // A partial refund, then one too large, then the rest; then nothing is left.
        advance(&api, &clock, "2026-04-02T00:00:00Z").await;
        let (status, r1) = api
            .post("/api/v1/refunds/", json!({"order_id": order, "amount_units": 10_000, "reason": "REQUESTED_BY_CUSTOMER", "internal_note": "goodwill"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r1}");
        assert_eq!((r1["amountUnits"].as_i64(), r1["amount"].as_f64()), (Some(10_000), Some(100.0)));
        assert_eq!(r1["status"], "SUCCEEDED");
        assert_eq!(r1["order"]["refundedUnits"], 10_000);
        let (status, body) = api
            .post("/api/v1/refunds/", json!({"orderId": order, "amount": 200.0}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("amount"));
        // The charge's id works as the order too.
        let (status, r2) = api
            .post("/api/v1/refunds/", json!({"orderId": charge["id"], "reason": "OTHER"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r2}");
        assert_eq!(r2["amountUnits"], 19_900);
        let (status, body) = api.post("/api/v1/refunds/", json!({"orderId": order})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        let (_, got) = api.get(&format!("/api/v1/refunds/{}/", r1["id"].as_str().unwrap())).await;
        assert_eq!(got["internalNote"], "goodwill");
        let (_, list) = api.get("/api/v1/refunds/?page_size=1").await;
        assert_eq!(list["count"], 2);
        assert!(list["next"].is_string(), "{list}");
        // Two credit notes, each one negative line; the customer's credit is untouched (the
        // money went back to the card).
        let (_, invoices) = api.get("/api/v1/invoices/?customer_id=buyer&page_size=100").await;
        let notes: Vec<&Value> = invoices["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["reason"] == "credit_note")
            .collect();
        assert_eq!(notes.len(), 2, "{invoices}");
        let note_total: f64 = notes
            .iter()
            .map(|n| n["total"].as_str().unwrap().parse::<f64>().unwrap())
            .sum();
        assert_eq!(note_total, -299.0);
        let (_, balances) = api.get("/api/v1/customers/buyer/balances/").await;
        assert!(
            balances.to_string().contains("[]") || !balances.to_string().contains("usd"),
            "{balances}"
        );
        // Transactions: the payment and the two refunds. The declined charge attempt left a
        // void invoice (never due), which is no transaction.
        let (status, tx) = api.get("/api/v1/transaction/").await;
        assert_eq!(status, StatusCode::OK, "{tx}");
        let kinds: Vec<&str> = tx["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["transactionType"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["REFUND", "REFUND", "CHARGE"], "{tx}");
        assert_eq!(tx["results"][2]["amountTotal"], 299.0);
        assert_eq!(tx["results"][2]["currencySymbol"], "$");
        let (_, only) = api.get("/api/v1/transaction/?status=success&search=buyer&page_size=1&page=3").await;
        assert_eq!(only["results"][0]["transactionType"], "CHARGE", "{only}");
        wait_until("refund.created delivered twice", || async {
            types(&receiver).iter().filter(|t| *t == "refund.created").count() == 2
        })
        .await;
    }
}

both! {
    async fn kelviq_signed_webhooks_verify_as_the_sdks_do(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let (url, receiver) = start_receiver(0).await;
        let (status, ep) = api
            .post("/api/v1/webhook-endpoints/", json!({"url": url, "events": ["customer.created"], "signatureScheme": "kelviq"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        assert_eq!(ep["signatureScheme"], "kelviq");
        let secret = ep["secret"].as_str().unwrap().to_owned();
        let (status, body) = api
            .post("/api/v1/webhook-endpoints/", json!({"url": url, "events": ["*"], "signatureScheme": "hmac"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("signatureScheme"));
        api.create_customer("signed").await;
        wait_until("delivered", || async { !receiver.got.lock().unwrap().is_empty() }).await;
        let (headers, body) = receiver.got.lock().unwrap()[0].clone();
        let id = headers["webhook-id"].to_str().unwrap();
        let ts = headers["webhook-timestamp"].to_str().unwrap();
        // Kelviq's validate_event: hex HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the
        // secret's UTF-8 bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{id}.{ts}.{body}").as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(headers["webhook-signature"].to_str().unwrap(), format!("v1,{hex}"));
        let (_, list) = api.get("/api/v1/webhook-endpoints/").await;
        assert_eq!(list["results"][0]["signatureScheme"], "kelviq");
    }
}
