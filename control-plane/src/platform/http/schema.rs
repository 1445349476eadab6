//! Shapes that exist for the OpenAPI document only: what middleware, pages and streams send,
//! described for readers and fuzzers. The wire types themselves live where they are serialized.

use utoipa::ToSchema;

/// The error envelope of every JSON error response (`tollgate_shared::ErrorEnvelope`).
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": 404, "type": "not_found", "message": "Customer 'c1' not found"}}))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(ToSchema)]
pub struct ErrorBody {
    /// The HTTP status code, repeated.
    pub code: u16,
    /// A stable name for the kind of error, such as `bad_request` or `not_found`.
    #[schema(rename = "type")]
    pub kind: String,
    /// What went wrong, naming the offending field where there is one.
    pub message: String,
}

/// `GET /readyz` when the database answers.
#[derive(ToSchema)]
pub struct Readiness {
    pub ready: bool,
}

/// The form the hosted checkout page posts.
#[derive(ToSchema)]
pub struct PayForm {
    /// 12-19 digits; spaces are ignored. In test mode 4242 4242 4242 4242 pays and
    /// 4000 0000 0000 0002 is declined.
    #[schema(example = "4242 4242 4242 4242", format = "card-number")]
    pub card_number: String,
    /// `MM/YY`, not in the past.
    #[schema(example = "12/34", format = "card-expiry")]
    pub expiry: String,
    /// 3-4 digits.
    #[schema(example = "123", format = "card-cvc")]
    pub cvc: String,
    /// Name on the card.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// In a mode with Stripe, the SetupIntent Stripe.js confirmed (`seti_…`) is posted instead
    /// of the card's fields.
    pub setup_intent: Option<String>,
}

/// The forms the customer portal posts (which fields depend on the form).
#[derive(ToSchema)]
pub struct PortalForm {
    /// The session's form nonce, from the page.
    pub csrf: String,
    /// switch, cancel, resume: one of the customer's subscriptions.
    #[schema(format = "portal-subscription")]
    pub subscription: Option<String>,
    /// switch: `plan:PERIOD`, e.g. `enterprise:MONTHLY`.
    #[schema(format = "price-choice")]
    pub price: Option<String>,
    /// switch: what the preview said the card is charged now, in minor units.
    pub expected: Option<i64>,
    /// card: 12-19 digits; in test mode 4242 4242 4242 4242 is accepted.
    #[schema(example = "4242 4242 4242 4242", format = "card-number")]
    pub card_number: Option<String>,
    /// card: `MM/YY`, not in the past.
    #[schema(example = "12/34", format = "card-expiry")]
    pub expiry: Option<String>,
    /// card: 3-4 digits.
    #[schema(example = "123", format = "card-cvc")]
    pub cvc: Option<String>,
    /// card, in a mode with Stripe: the SetupIntent Stripe.js confirmed (`seti_…`), instead of
    /// the card's fields.
    pub setup_intent: Option<String>,
}

/// One line of the sync stream (`tollgate_shared::sync::Frame`), e.g.
/// `{"protocol":1,"frame":{"type":"delta","data":{…}}}`. See docs/sync.md.
#[derive(ToSchema)]
pub struct SyncFrame {
    /// Wire protocol version; edges refuse versions they do not know.
    pub protocol: u32,
    pub frame: SyncFrameBody,
}

#[derive(ToSchema)]
pub struct SyncFrameBody {
    #[schema(rename = "type")]
    pub kind: SyncFrameType,
    /// The frame's payload; its shape depends on `type`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SyncFrameType {
    SnapshotBegin,
    SnapshotChunk,
    SnapshotEnd,
    Delta,
    Heartbeat,
}
