//! Request extractors that speak the error envelope: JSON bodies (camelCase or snake_case
//! keys, errors that name the offending field), query strings, and pagination.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tollgate_shared::ErrorKind;

use crate::platform::http::error::ApiError;

/// A JSON body. Kelviq's SDKs send snake_case (`plan_identifier`) and its docs camelCase
/// (`planIdentifier`); keys are folded to camelCase before deserializing so every handler
/// declares one shape. `metadata` and `properties` objects are passed through untouched. An empty body reads
/// as `{}` so that endpoints whose fields are all optional accept a bare POST.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::new(ErrorKind::BadRequest, format!("malformed JSON body: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorKind::BadRequest,
            "request body must be a JSON object",
        ));
    }
    if has_nul(&value) {
        return Err(nul_refused("request body"));
    }
    let value = camel_keys(value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        };
        ApiError::new(ErrorKind::BadRequest, message)
    })
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorKind::PayloadTooLarge, "request body is too large")
    } else {
        ApiError::new(
            ErrorKind::BadRequest,
            format!("unreadable request body: {e}"),
        )
    }
}

fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            // When both spellings arrive, the documented camelCase one wins.
            let mut out = Map::with_capacity(map.len());
            let camel_given: Vec<String> =
                map.keys().filter(|k| !k.contains('_')).cloned().collect();
            for (k, v) in map {
                let camel = snake_to_camel(&k);
                if camel != k && camel_given.contains(&camel) {
                    continue;
                }
                // Free-form objects are the caller's own: their keys stay as sent.
                let v = if k == "metadata" || k == "properties" {
                    v
                } else {
                    camel_keys(v)
                };
                out.insert(camel, v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(camel_keys).collect()),
        Value::Number(n) => Value::Number(integral(n)),
        other => other,
    }
}

/// `3.0` is the integer 3 to JSON Schema (and to JavaScript, which cannot tell them apart):
/// integral numbers written with a fraction are read as integers, so `"quantity": 3.0` is not
/// refused where the documented type is `integer`. Other numbers are left as they are.
fn integral(n: serde_json::Number) -> serde_json::Number {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            serde_json::Number::from(f as i64)
        }
        _ => n,
    }
}

/// NUL characters are refused everywhere a caller can put text: PostgreSQL cannot store them in
/// text, and no id, name or URL needs one.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn nul_refused(place: &str) -> ApiError {
    ApiError::new(
        ErrorKind::BadRequest,
        format!("{place}: text must not contain the NUL character (\\u0000)"),
    )
}

/// Decoded form fields (hosted pages), refusing NUL characters like every other input.
pub fn parse_form(body: &[u8]) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let form: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(body).unwrap_or_default();
    if form
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(nul_refused("form"));
    }
    Ok(form)
}

pub fn snake_to_camel(key: &str) -> String {
    if !key.contains('_') {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A path parameter; an undecodable one (invalid UTF-8, say) is a 400 envelope, not axum's
/// plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(nul_refused("path"));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::new(ErrorKind::BadRequest, format!("path: {}", e.body_text())))
    }
}

/// A query string; bad values become a 400 envelope naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(nul_refused("query"));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::new(
                    ErrorKind::BadRequest,
                    format!("query parameter {path}: {}", e.into_inner()),
                )
            })
    }
}

/// `page` (1-based) and `page_size` (1–100, default 10), shared by every list endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u32,
    pub size: u32,
}

impl Page {
    pub fn parse(page: Option<u32>, size: Option<u32>) -> Result<Page, ApiError> {
        let page = page.unwrap_or(1);
        let size = size.unwrap_or(10);
        if page == 0 {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                "page: must be 1 or more",
            ));
        }
        if !(1..=100).contains(&size) {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                "page_size: must be between 1 and 100",
            ));
        }
        Ok(Page { page, size })
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.size)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.size)
    }
}

/// `{count, next, previous, results}`, with `next`/`previous` as absolute URLs (Kelviq, DRF).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Paginated<T> {
    /// `base` is the list URL with its other filters, without `page`/`page_size`.
    pub fn new(results: Vec<T>, count: i64, page: Page, base: &str) -> Self {
        let link = |p: u32| {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}page={p}&page_size={}", page.size)
        };
        let seen = page.offset() + results.len() as i64;
        Paginated {
            count,
            next: (seen < count).then(|| link(page.page + 1)),
            previous: (page.page > 1).then(|| link(page.page - 1)),
            results,
        }
    }
}

/// Builds `base?k=v&…` for pagination links from the filters that were set.
pub fn list_url(public_url: &str, path: &str, filters: &[(&str, Option<&str>)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in filters {
        if let Some(v) = v {
            ser.append_pair(k, v);
        }
    }
    let q = ser.finish();
    if q.is_empty() {
        format!("{public_url}{path}")
    } else {
        format!("{public_url}{path}?{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        plan_identifier: String,
        #[serde(default)]
        metadata: Option<Value>,
    }

    #[test]
    fn snake_and_camel_bodies_read_the_same() {
        let a: Body = parse_json(br#"{"plan_identifier":"pro"}"#).unwrap();
        let b: Body = parse_json(br#"{"planIdentifier":"pro"}"#).unwrap();
        assert_eq!(a.plan_identifier, b.plan_identifier);
        let m: Body = parse_json(br#"{"planIdentifier":"pro","metadata":{"keep_me":1}}"#).unwrap();
        assert!(m.metadata.unwrap().get("keep_me").is_some());
    }

    #[test]
    fn camel_case_wins_when_both_spellings_arrive() {
        for body in [
            br#"{"plan_identifier":"a","planIdentifier":"b"}"#.as_slice(),
            br#"{"planIdentifier":"b","plan_identifier":"a"}"#,
        ] {
            let parsed: Body = parse_json(body).unwrap();
            assert_eq!(parsed.plan_identifier, "b");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"planIdentifier":5}"#).unwrap_err();
        assert!(e.message.starts_with("planIdentifier:"), "{}", e.message);
        let e = parse_json::<Body>(b"{}").unwrap_err();
        assert!(e.message.contains("planIdentifier"), "{}", e.message);
        let e = parse_json::<Body>(b"[1]").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = parse_json::<Body>(b"{nope").unwrap_err();
        assert!(e.message.starts_with("malformed JSON"));
    }

    #[test]
    fn integral_numbers_with_a_fraction_read_as_integers() {
        #[derive(Deserialize, Debug)]
        struct Q {
            quantity: i64,
        }
        // (body, parsed)
        let cases: &[(&[u8], Option<i64>)] = &[
            (br#"{"quantity":3}"#, Some(3)),
            (br#"{"quantity":3.0}"#, Some(3)),
            (br#"{"quantity":-155.0}"#, Some(-155)),
            (br#"{"quantity":3.5}"#, None),
            (br#"{"quantity":1e300}"#, None),
            (br#"{"quantity":"3"}"#, None),
        ];
        for (body, want) in cases {
            let got = parse_json::<Q>(body).ok().map(|q| q.quantity);
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn camel_casing() {
        assert_eq!(snake_to_camel("success_url"), "successUrl");
        assert_eq!(snake_to_camel("successUrl"), "successUrl");
        assert_eq!(snake_to_camel("_x"), "x");
    }

    #[test]
    fn pagination_links() {
        let p = Page::parse(Some(1), Some(2)).unwrap();
        let page = Paginated::new(
            vec![1, 2],
            3,
            p,
            "http://x/api/v1/subscriptions?customer_id=a",
        );
        assert_eq!(
            page.next.as_deref(),
            Some("http://x/api/v1/subscriptions?customer_id=a&page=2&page_size=2")
        );
        assert_eq!(page.previous, None);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(None, Some(101)).is_err());
    }
}
