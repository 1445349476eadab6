//! The sync wire format: newline-delimited JSON frames on one long-lived HTTP response.
//!
//! A stream opens with a snapshot (`snapshot_begin`, any number of `snapshot_chunk`s,
//! `snapshot_end`) at version V, or — when the edge asked to resume `since` a version the
//! control plane still has in its change log — with nothing but the missing deltas. Then come
//! `delta` frames V+1, V+2… strictly in order, and `heartbeat`s while nothing changes. An edge
//! that sees a version other than `last + 1` drops the stream and resyncs. See docs/sync.md.

use serde::{Deserialize, Serialize};

use crate::entitlement::{CustomerEntitlements, Entitlement};
use crate::keys::{KeyKind, Mode};

/// Bumped on any incompatible change to the frames below; edges refuse other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path of the stream on the control plane.
pub const STREAM_PATH: &str = "/internal/sync/stream";

/// Customers per `snapshot_chunk`: large enough to amortise framing, small enough to stream.
pub const SNAPSHOT_CHUNK: usize = 2_000;

/// `{"protocol":1,"frame":{"type":"delta","data":{…}}}`. Adjacently tagged rather than
/// flattened so that a deserializer can stream straight into the variant without buffering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub protocol: u32,
    #[serde(rename = "frame")]
    pub body: FrameBody,
}

impl Frame {
    pub fn new(body: FrameBody) -> Self {
        Frame {
            protocol: PROTOCOL_VERSION,
            body,
        }
    }

    /// One line of the stream, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum FrameBody {
    SnapshotBegin(SnapshotBegin),
    SnapshotChunk {
        customers: Vec<CustomerEntitlements>,
    },
    SnapshotEnd {
        version: u64,
    },
    Delta(Delta),
    Heartbeat {
        version: u64,
    },
}

/// Everything that is not per customer: who may call the edge, how to check customer tokens,
/// and what a customer the edge has never heard of is entitled to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotBegin {
    pub version: u64,
    pub customer_count: u64,
    pub keys: Vec<EdgeKey>,
    pub token_keys: Vec<String>,
    pub defaults: Vec<ModeDefaults>,
}

/// A client credential the edge accepts: the SHA-256 of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeKey {
    pub hash: String,
    pub mode: Mode,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeDefaults {
    pub mode: Mode,
    pub entitlements: Vec<Entitlement>,
}

/// One committed control-plane transaction's effect on what edges serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub version: u64,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "data", rename_all = "snake_case")]
pub enum Change {
    /// Replace one customer's compiled entitlements.
    Customer(CustomerEntitlements),
    /// Forget a customer; they fall back to the defaults.
    CustomerRemoved {
        mode: Mode,
        customer_id: String,
    },
    /// The default plans' entitlements of a mode changed (catalog edit).
    Defaults(ModeDefaults),
    KeyAdded(EdgeKey),
    KeyRevoked {
        hash: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entitlement::{FeatureType, Limit};

    fn sample_entitlements() -> Vec<Entitlement> {
        vec![
            Entitlement {
                feature_id: "export-data".into(),
                feature_type: FeatureType::Boolean,
                has_access: true,
                usage_limit: Limit::NotApplicable,
                current_usage: None,
                remaining: None,
                reset_at: None,
                hard_limit: None,
            },
            Entitlement {
                feature_id: "api-calls".into(),
                feature_type: FeatureType::Meter,
                has_access: true,
                usage_limit: Limit::Unlimited,
                current_usage: Some(3),
                remaining: None,
                reset_at: Some("2026-12-01T00:00:00Z".into()),
                hard_limit: Some(true),
            },
        ]
    }

    fn every_frame() -> Vec<Frame> {
        let customer = CustomerEntitlements {
            mode: Mode::Test,
            customer_id: "user-123".into(),
            entitlements: sample_entitlements(),
        };
        vec![
            Frame::new(FrameBody::SnapshotBegin(SnapshotBegin {
                version: 7,
                customer_count: 1,
                keys: vec![EdgeKey {
                    hash: "ab".repeat(32),
                    mode: Mode::Live,
                    kind: KeyKind::Publishable,
                }],
                token_keys: vec!["AAAA".into()],
                defaults: vec![ModeDefaults {
                    mode: Mode::Test,
                    entitlements: sample_entitlements(),
                }],
            })),
            Frame::new(FrameBody::SnapshotChunk {
                customers: vec![customer.clone()],
            }),
            Frame::new(FrameBody::SnapshotEnd { version: 7 }),
            Frame::new(FrameBody::Delta(Delta {
                version: 8,
                changes: vec![
                    Change::Customer(customer),
                    Change::CustomerRemoved {
                        mode: Mode::Live,
                        customer_id: "gone".into(),
                    },
                    Change::Defaults(ModeDefaults {
                        mode: Mode::Live,
                        entitlements: vec![],
                    }),
                    Change::KeyAdded(EdgeKey {
                        hash: "cd".repeat(32),
                        mode: Mode::Test,
                        kind: KeyKind::Secret,
                    }),
                    Change::KeyRevoked {
                        hash: "cd".repeat(32),
                    },
                ],
            })),
            Frame::new(FrameBody::Heartbeat { version: 8 }),
        ]
    }

    #[test]
    fn every_frame_round_trips_through_one_line() {
        for frame in every_frame() {
            let line = frame.to_line();
            assert_eq!(
                line.iter().filter(|b| **b == b'\n').count(),
                1,
                "one frame, one line"
            );
            let back: Frame = serde_json::from_slice(&line).unwrap();
            assert_eq!(back, frame);
        }
    }

    #[test]
    fn frames_carry_the_protocol_version_and_type() {
        let line = Frame::new(FrameBody::Heartbeat { version: 3 }).to_line();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["protocol"], PROTOCOL_VERSION);
        assert_eq!(v["frame"]["type"], "heartbeat");
        assert_eq!(v["frame"]["data"]["version"], 3);
    }
}
