//! Bodies built once, when data arrives: the default plans' entitlements of each mode (served,
//! wrapped with the caller's id, to every customer the edge does not know), and the ETag rule.
//! Known customers are rendered per request from their shape instead ([`crate::shape`]), at a
//! few dozen bytes per customer rather than a prepared ~600-byte body each; [`Prepared::customer`]
//! stays as the reference those renders are compared against (benches, tests). A single
//! feature is a zero-copy slice of a prepared body, located by byte ranges recorded while
//! serializing.

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use tollgate_shared::Entitlement;

/// One entitlement object inside a prepared body.
#[derive(Debug, Clone, Copy)]
struct Entry {
    object: (u32, u32),
    /// The raw (unescaped) feature identifier. The control plane only allows identifiers made
    /// of characters JSON never escapes, so the bytes in the body equal the identifier.
    feature_id: (u32, u32),
}

#[derive(Debug, Clone)]
pub struct Prepared {
    body: Bytes,
    etag: HeaderValue,
    entries: Box<[Entry]>,
}

const CUSTOMER_PREFIX: &[u8] = b"{\"customerId\":";
const ENTITLEMENTS_KEY: &[u8] = b",\"entitlements\":";
const FEATURE_ID_PREFIX: &[u8] = b"{\"featureId\":\"";

impl Prepared {
    /// The full list response for one known customer.
    pub fn customer(customer_id: &str, entitlements: &[Entitlement]) -> Prepared {
        let mut buf = BytesMut::with_capacity(64 + entitlements.len() * 128);
        buf.put_slice(CUSTOMER_PREFIX);
        write_json(&mut buf, customer_id);
        buf.put_slice(ENTITLEMENTS_KEY);
        let entries = write_array(&mut buf, entitlements);
        buf.put_u8(b'}');
        Prepared::seal(buf, entries)
    }

    /// Just the `[...]` array: the defaults, shared by every customer the edge does not know.
    pub fn array(entitlements: &[Entitlement]) -> Prepared {
        let mut buf = BytesMut::with_capacity(2 + entitlements.len() * 128);
        let entries = write_array(&mut buf, entitlements);
        Prepared::seal(buf, entries)
    }

    fn seal(buf: BytesMut, entries: Vec<Entry>) -> Prepared {
        let body = buf.freeze();
        Prepared {
            etag: etag_for(&body),
            body,
            entries: entries.into_boxed_slice(),
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// The single entitlement object for `feature_id`, sharing this body's memory.
    pub fn feature(&self, feature_id: &str) -> Option<Bytes> {
        self.entries.iter().find_map(|e| {
            let id = &self.body[e.feature_id.0 as usize..e.feature_id.1 as usize];
            (id == feature_id.as_bytes())
                .then(|| self.body.slice(e.object.0 as usize..e.object.1 as usize))
        })
    }

    /// A list response naming `customer_id`, built from an array-only `Prepared`
    /// (`only` narrows it to one feature, as Kelviq's `feature_id` query does).
    pub fn wrap_for(&self, customer_id: &str, only: Option<&Bytes>) -> Bytes {
        match only {
            Some(obj) => list_body(customer_id, obj, true),
            None => list_body(customer_id, &self.body, false),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `{"customerId":…,"entitlements":…}` around either a whole array or one object.
pub fn list_body(customer_id: &str, inner: &[u8], single_object: bool) -> Bytes {
    let mut buf = BytesMut::with_capacity(inner.len() + customer_id.len() + 40);
    buf.put_slice(CUSTOMER_PREFIX);
    write_json(&mut buf, customer_id);
    buf.put_slice(ENTITLEMENTS_KEY);
    if single_object {
        buf.put_u8(b'[');
        buf.put_slice(inner);
        buf.put_u8(b']');
    } else {
        buf.put_slice(inner);
    }
    buf.put_u8(b'}');
    buf.freeze()
}

fn write_array(buf: &mut BytesMut, entitlements: &[Entitlement]) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(entitlements.len());
    buf.put_u8(b'[');
    for (i, e) in entitlements.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        let start = buf.len();
        let mut w = buf.writer();
        // Serializing our own plain struct into memory cannot fail.
        let _ = serde_json::to_writer(&mut w, e);
        let end = w.get_ref().len();
        let id_start = start + FEATURE_ID_PREFIX.len();
        entries.push(Entry {
            object: (start as u32, end as u32),
            feature_id: (id_start as u32, (id_start + e.feature_id.len()) as u32),
        });
    }
    buf.put_u8(b']');
    entries
}

fn write_json(buf: &mut BytesMut, s: &str) {
    let _ = serde_json::to_writer(buf.writer(), s);
}

/// A strong validator from the body's content, so equal bodies on different edges (or after a
/// resync) keep the same ETag and clients' caches stay warm.
pub fn etag_for(body: &[u8]) -> HeaderValue {
    let hash = xxhash_rust::xxh3::xxh3_64(body);
    let mut text = [0u8; 18];
    text[0] = b'"';
    text[17] = b'"';
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in 0..16 {
        text[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("\"0\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::FeatureType;
    use tollgate_shared::entitlement::Limit;

    fn ents() -> Vec<Entitlement> {
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
                feature_id: "team-size".into(),
                feature_type: FeatureType::Customizable,
                has_access: true,
                usage_limit: Limit::Max(5),
                current_usage: None,
                remaining: None,
                reset_at: None,
                hard_limit: None,
            },
        ]
    }

    #[test]
    fn customer_body_is_the_kelviq_shape_and_features_slice_out() {
        let p = Prepared::customer("user-\"1\"", &ents());
        let v: serde_json::Value = serde_json::from_slice(p.body()).unwrap();
        assert_eq!(v["customerId"], "user-\"1\"");
        assert_eq!(v["entitlements"][1]["usageLimit"], 5);
        let one: serde_json::Value =
            serde_json::from_slice(&p.feature("team-size").unwrap()).unwrap();
        assert_eq!(one, v["entitlements"][1]);
        assert!(p.feature("team").is_none());
        assert!(p.feature("nope").is_none());
    }

    #[test]
    fn defaults_wrap_for_any_customer() {
        let d = Prepared::array(&ents());
        let body = d.wrap_for("new-user", None);
        assert_eq!(body, Prepared::customer("new-user", &ents()).body());
        let only = d.feature("export-data").unwrap();
        let narrowed: serde_json::Value =
            serde_json::from_slice(&d.wrap_for("x", Some(&only))).unwrap();
        assert_eq!(narrowed["entitlements"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn etag_depends_on_content_only() {
        assert_eq!(
            Prepared::customer("a", &ents()).etag(),
            Prepared::customer("a", &ents()).etag()
        );
        assert_ne!(
            Prepared::customer("a", &ents()).etag(),
            Prepared::customer("b", &ents()).etag()
        );
    }
}
