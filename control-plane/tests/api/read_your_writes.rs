//! Every committed write answers the change-log version it committed (`Tollgate-Version`), so
//! an app can ask an edge for at least that version (`minVersion`) and read its own write.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

both! {
    async fn every_write_answer_carries_the_version_it_committed(db: Db) {
        let cp = ControlPlane::start_on(db);
        let api = cp.api();
        let edge = cp.edge();
        edge.wait_ready().await;

        let (status, body, first) = api
            .post_versioned("/api/v1/customers/", json!({"customerId": "ryw-1"}), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let first = first.expect("a created customer answers its version");
        let (_, _, second) = api
            .post_versioned("/api/v1/customers/", json!({"customerId": "ryw-2"}), None)
            .await;
        let second = second.expect("a version");
        assert!(second > first, "{second} after {first}");

        // A replay answers a version that already holds the first answer's write.
        let (status, _, original) = api
            .post_versioned("/api/v1/customers/", json!({"customerId": "ryw-3"}), Some("ryw-key"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _, replayed) = api
            .post_versioned("/api/v1/customers/", json!({"customerId": "ryw-3"}), Some("ryw-key"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(replayed.expect("a replay answers a version") >= original.expect("a version"));

        // A refused write committed nothing to read: no version.
        let (status, body, refused) = api
            .post_versioned("/api/v1/customers/", json!({"customerId": "ryw-1"}), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(refused, None);
        let (status, _, bad) = api
            .post_versioned("/api/v1/customers/", json!({"customerId": 7}), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(bad, None);

        // The version is the change log's: the edge reaches it, and then serves the write.
        let (status, body, paid) = api
            .post_versioned(
                "/api/v1/customers/ryw-1/payment-methods/",
                json!({"token": "pm_card_visa"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body, subscribed) = api
            .post_versioned(
                "/api/v1/subscribe/",
                json!({"customerId": "ryw-1", "planId": "pro", "chargePeriod": "MONTHLY"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let subscribed = subscribed.expect("a version");
        assert!(subscribed > paid.expect("a version"));
        wait_until("the edge at the subscribe's version", || async {
            edge.version().await >= subscribed
        })
        .await;
        assert!(has_access(&edge.entitlements("ryw-1").await, "export-data"));
    }
}
