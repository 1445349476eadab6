//! Interned entitlement "shapes": what customers on the same plans have in common.
//!
//! A million customers on a handful of plans repeat the same feature ids, types, limits and
//! JSON punctuation a million times; only a few numbers differ (a meter's usage, remaining and
//! reset time). So the edge keeps, per distinct combination, one [`Shape`] — the response's
//! JSON text with holes — and per customer only its id, the shape's number and those numbers
//! ([`crate::customers`]). Bodies are rendered from the two at request time, straight into the
//! response buffer, byte for byte what `serde_json` makes of the same [`Entitlement`]s (a test
//! below compares them on awkward data).
//!
//! What makes two customers share a shape: equal feature ids, types, `hasAccess`, `usageLimit`
//! and `hardLimit`, in the same order, and the same *form* of each per-customer field:
//! `currentUsage` present or not; `remaining` absent, equal to `max(0, limit - usage)`
//! ("derived", stored as nothing) or anything else (stored); `resetAt` absent, a canonical
//! `YYYY-MM-DDTHH:MM:SSZ` (stored as seconds) or any other string (kept in the shape as text,
//! so an odd value costs a shape, never a wrong byte).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tollgate_shared::entitlement::Limit;
use tollgate_shared::{Entitlement, FeatureType};

use crate::codec::{json_string, parse_reset, put_varint, varint_len, zigzag};
use crate::template::{Builder, Fill, Hole, Template};

/// One entitlement as read off the wire, borrowing its strings from the input buffer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntRef<'a> {
    #[serde(borrow)]
    pub feature_id: Cow<'a, str>,
    pub feature_type: FeatureType,
    pub has_access: bool,
    #[serde(default)]
    pub usage_limit: Limit,
    #[serde(default)]
    pub current_usage: Option<i64>,
    #[serde(default)]
    pub remaining: Option<i64>,
    /// Through [`CowStr`]: serde's own `Cow` only borrows when it is a field's whole type.
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub reset_at: Option<Cow<'a, str>>,
    #[serde(default)]
    pub hard_limit: Option<bool>,
}

impl<'a> From<&'a Entitlement> for EntRef<'a> {
    fn from(e: &'a Entitlement) -> Self {
        EntRef {
            feature_id: Cow::Borrowed(&e.feature_id),
            feature_type: e.feature_type,
            has_access: e.has_access,
            usage_limit: e.usage_limit,
            current_usage: e.current_usage,
            remaining: e.remaining,
            reset_at: e.reset_at.as_deref().map(Cow::Borrowed),
            hard_limit: e.hard_limit,
        }
    }
}

/// A string borrowed from the input when the deserializer can lend it (simd-json always can:
/// it unescapes in place), owned otherwise.
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(CowStr)
    }
}

fn opt_cow<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<CowStr<'a>>::deserialize(d)?.map(|c| c.0))
}

/// How a customer's `remaining` is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemainingForm {
    Absent,
    /// `max(0, limit - currentUsage)`: rendered from the usage, stores nothing.
    Derived,
    Stored,
}

/// How a customer's `resetAt` is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetForm {
    Absent,
    /// Canonical RFC 3339 in whole UTC seconds: stored as the number of seconds.
    Seconds,
    /// Anything else: part of the shape, verbatim.
    Literal(Box<str>),
}

/// Everything about one feature that customers of a shape share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureShape {
    pub feature_id: Box<str>,
    pub feature_type: FeatureType,
    pub has_access: bool,
    /// `null` in JSON stands for unlimited; absent for not applicable.
    pub usage_limit: Option<Option<i64>>,
    pub current_usage: bool,
    pub remaining: RemainingForm,
    pub reset_at: ResetForm,
    pub hard_limit: Option<bool>,
}

fn limit_to_wire(l: Limit) -> Option<Option<i64>> {
    match l {
        Limit::NotApplicable => None,
        Limit::Unlimited => Some(None),
        Limit::Max(n) => Some(Some(n)),
    }
}

fn derived_remaining(limit: Limit, usage: Option<i64>) -> Option<i64> {
    match (limit, usage) {
        (Limit::Max(max), Some(u)) => Some(max.saturating_sub(u).max(0)),
        _ => None,
    }
}

impl FeatureShape {
    fn of(e: &EntRef<'_>) -> FeatureShape {
        FeatureShape {
            feature_id: e.feature_id.as_ref().into(),
            feature_type: e.feature_type,
            has_access: e.has_access,
            usage_limit: limit_to_wire(e.usage_limit),
            current_usage: e.current_usage.is_some(),
            remaining: remaining_form(e),
            reset_at: match e.reset_at.as_deref() {
                None => ResetForm::Absent,
                Some(s) if parse_reset(s).is_some() => ResetForm::Seconds,
                Some(s) => ResetForm::Literal(s.into()),
            },
            hard_limit: e.hard_limit,
        }
    }

    fn matches(&self, e: &EntRef<'_>) -> bool {
        *self.feature_id == *e.feature_id
            && self.feature_type == e.feature_type
            && self.has_access == e.has_access
            && self.usage_limit == limit_to_wire(e.usage_limit)
            && self.current_usage == e.current_usage.is_some()
            && self.hard_limit == e.hard_limit
            && self.remaining == remaining_form(e)
            && match (&self.reset_at, e.reset_at.as_deref()) {
                (ResetForm::Absent, None) => true,
                (ResetForm::Seconds, Some(s)) => parse_reset(s).is_some(),
                (ResetForm::Literal(l), Some(s)) => **l == *s && parse_reset(s).is_none(),
                _ => false,
            }
    }
}

fn remaining_form(e: &EntRef<'_>) -> RemainingForm {
    match e.remaining {
        None => RemainingForm::Absent,
        Some(r) if derived_remaining(e.usage_limit, e.current_usage) == Some(r) => {
            RemainingForm::Derived
        }
        Some(_) => RemainingForm::Stored,
    }
}

/// The largest integer every JSON reader holds exactly (2^53 - 1, `Number.MAX_SAFE_INTEGER`):
/// the value of an unlimited feature's OFREP `.limit` and `.remaining` flags.
pub const UNLIMITED: i64 = 9_007_199_254_740_991;

/// The OFREP flags of one feature, as spans of [`Shape`]'s OFREP template.
#[derive(Debug, Clone, Copy)]
struct FlagSpans {
    /// `{feature}`: a boolean, `hasAccess`.
    access: usize,
    /// `{feature}.limit`: an integer, `usageLimit` (METER and CUSTOMIZABLE).
    limit: Option<usize>,
    /// `{feature}.remaining`: an integer (METER).
    remaining: Option<usize>,
}

/// Which OFREP flag a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagRef(usize);

/// The common part of some customers' entitlement lists.
#[derive(Debug)]
pub struct Shape {
    features: Box<[FeatureShape]>,
    /// The GET body's `[…]` array; one span per feature.
    json: Template,
    /// OFREP's `[…]` array of flags; one span per flag.
    ofrep: Template,
    flags: Box<[FlagSpans]>,
    /// Numbers stored per customer.
    stored: usize,
}

fn put_bool(t: &mut Builder, b: bool) {
    t.put(if b { b"true" } else { b"false" });
}

fn put_int(t: &mut Builder, n: i64) {
    t.put(itoa::Buffer::new().format(n).as_bytes());
}

/// The GET body: the same field order and skipping rules as `Entitlement`'s derived
/// `Serialize`.
fn json_template(features: &[FeatureShape]) -> Template {
    let mut t = Builder::with_capacity(features.len() * 96);
    t.put(b"[");
    for (i, f) in features.iter().enumerate() {
        if i > 0 {
            t.put(b",");
        }
        t.begin_span();
        t.put(b"{\"featureId\":");
        json_string(t.text(), &f.feature_id);
        t.put(b",\"featureType\":\"");
        t.put(f.feature_type.as_str().as_bytes());
        t.put(b"\",\"hasAccess\":");
        put_bool(&mut t, f.has_access);
        if let Some(limit) = f.usage_limit {
            t.put(b",\"usageLimit\":");
            match limit {
                Some(n) => put_int(&mut t, n),
                None => t.put(b"null"),
            }
        }
        if f.current_usage {
            t.put(b",\"currentUsage\":");
            t.hole(Hole::Usage);
        }
        match f.remaining {
            RemainingForm::Absent => {}
            RemainingForm::Derived => {
                t.put(b",\"remaining\":");
                t.hole(Hole::RemainingDerived(f.usage_limit.flatten().unwrap_or(0)));
            }
            RemainingForm::Stored => {
                t.put(b",\"remaining\":");
                t.hole(Hole::Remaining);
            }
        }
        match &f.reset_at {
            ResetForm::Absent => {}
            ResetForm::Seconds => {
                t.put(b",\"resetAt\":");
                t.hole(Hole::ResetAt);
            }
            ResetForm::Literal(s) => {
                t.put(b",\"resetAt\":");
                json_string(t.text(), s);
            }
        }
        if let Some(h) = f.hard_limit {
            t.put(b",\"hardLimit\":");
            put_bool(&mut t, h);
        }
        t.put(b"}");
        t.end_span();
    }
    t.put(b"]");
    t.finish()
}

/// One OFREP flag object up to its value: `{"key":"<feature><suffix>","value":`.
fn flag_head(t: &mut Builder, f: &FeatureShape, suffix: &str) {
    t.put(b"{\"key\":");
    if suffix.is_empty() {
        json_string(t.text(), &f.feature_id);
    } else {
        json_string(t.text(), &format!("{}{suffix}", f.feature_id));
    }
    t.put(b",\"value\":");
}

/// After the value: `,"reason":…,"variant":"…","metadata":{"featureType":"…"` (left open).
fn flag_tail(t: &mut Builder, f: &FeatureShape, variant: &[u8]) {
    t.put(b",\"reason\":");
    t.hole(Hole::Reason);
    t.put(b",\"variant\":\"");
    t.put(variant);
    t.put(b"\",\"metadata\":{\"featureType\":\"");
    t.put(f.feature_type.as_str().as_bytes());
    t.put(b"\"");
}

/// OFREP (docs/entitlements-clients.md): every feature is a boolean flag, `hasAccess`, whose
/// metadata carries the feature's numbers; a feature with a limit adds an integer
/// `{feature}.limit`, and a METER an integer `{feature}.remaining`. The stored numbers are
/// taken in the GET template's order.
fn ofrep_template(features: &[FeatureShape]) -> (Template, Box<[FlagSpans]>) {
    let mut t = Builder::with_capacity(features.len() * 320);
    let mut flags = Vec::with_capacity(features.len());
    t.put(b"[");
    for (i, f) in features.iter().enumerate() {
        if i > 0 {
            t.put(b",");
        }
        t.begin_span();
        flag_head(&mut t, f, "");
        put_bool(&mut t, f.has_access);
        flag_tail(&mut t, f, if f.has_access { b"on" } else { b"off" });
        match f.usage_limit {
            Some(Some(n)) => {
                t.put(b",\"usageLimit\":");
                put_int(&mut t, n);
            }
            Some(None) => t.put(b",\"unlimited\":true"),
            None => {}
        }
        if f.current_usage {
            t.put(b",\"currentUsage\":");
            t.hole(Hole::Usage);
        }
        match f.remaining {
            RemainingForm::Absent => {}
            RemainingForm::Derived => {
                t.put(b",\"remaining\":");
                t.hole(Hole::RemainingDerived(f.usage_limit.flatten().unwrap_or(0)));
            }
            RemainingForm::Stored => {
                t.put(b",\"remaining\":");
                t.hole(Hole::Remaining);
            }
        }
        match &f.reset_at {
            ResetForm::Absent => {}
            ResetForm::Seconds => {
                t.put(b",\"resetAt\":");
                t.hole(Hole::ResetAt);
            }
            ResetForm::Literal(s) => {
                t.put(b",\"resetAt\":");
                json_string(t.text(), s);
            }
        }
        if let Some(h) = f.hard_limit {
            t.put(b",\"hardLimit\":");
            put_bool(&mut t, h);
        }
        t.put(b"}}");
        let access = t.end_span();

        let limit = f.usage_limit.map(|limit| {
            t.put(b",");
            t.begin_span();
            flag_head(&mut t, f, ".limit");
            put_int(&mut t, limit.unwrap_or(UNLIMITED));
            flag_tail(&mut t, f, limited(limit));
            t.put(b"}}");
            t.end_span()
        });

        // `.remaining`: the number the feature's own flag just rendered, or, when the control
        // plane sent none, unlimited or what the usage leaves.
        let remaining_hole = match (f.remaining, f.usage_limit) {
            (RemainingForm::Derived | RemainingForm::Stored, _) => Some(Some(Hole::LastRemaining)),
            (RemainingForm::Absent, Some(None)) if f.feature_type == FeatureType::Meter => {
                Some(None)
            }
            (RemainingForm::Absent, Some(Some(n))) if f.current_usage => {
                Some(Some(Hole::RemainingDerived(n)))
            }
            _ => None,
        };
        let remaining = remaining_hole.map(|hole| {
            t.put(b",");
            t.begin_span();
            flag_head(&mut t, f, ".remaining");
            match hole {
                Some(h) => t.hole(h),
                None => put_int(&mut t, UNLIMITED),
            }
            flag_tail(&mut t, f, limited(f.usage_limit.flatten()));
            t.put(b"}}");
            t.end_span()
        });
        flags.push(FlagSpans {
            access,
            limit,
            remaining,
        });
    }
    t.put(b"]");
    (t.finish(), flags.into_boxed_slice())
}

fn limited(limit: Option<i64>) -> &'static [u8] {
    match limit {
        Some(_) => b"limited",
        None => b"unlimited",
    }
}

impl Shape {
    pub fn new(features: Vec<FeatureShape>) -> Shape {
        let json = json_template(&features);
        let (ofrep, flags) = ofrep_template(&features);
        let stored = json.stored();
        debug_assert_eq!(stored, ofrep.stored());
        Shape {
            features: features.into_boxed_slice(),
            json,
            ofrep,
            flags,
            stored,
        }
    }

    pub fn of(entitlements: &[EntRef<'_>]) -> Shape {
        Shape::new(entitlements.iter().map(FeatureShape::of).collect())
    }

    pub fn features(&self) -> &[FeatureShape] {
        &self.features
    }

    /// Whether `entitlements` have exactly this shape.
    pub fn matches(&self, entitlements: &[EntRef<'_>]) -> bool {
        self.features.len() == entitlements.len()
            && self
                .features
                .iter()
                .zip(entitlements)
                .all(|(f, e)| f.matches(e))
    }

    /// Bytes this shape holds (shared by all its customers).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Shape>()
            + self.json.bytes()
            + self.ofrep.bytes()
            + self.flags.len() * std::mem::size_of::<FlagSpans>()
            + self
                .features
                .iter()
                .map(|f| std::mem::size_of::<FeatureShape>() + f.feature_id.len())
                .sum::<usize>()
    }

    /// A buffer size that fits a rendered list (numbers at their widest are rare).
    pub fn body_len_hint(&self) -> usize {
        self.json.len_hint()
    }

    /// How many numbers a customer of this shape stores.
    pub fn stored(&self) -> usize {
        self.stored
    }

    /// Appends the numbers of `entitlements` (which must match) to `out`, as the record
    /// format in [`crate::customers`] keeps them: zigzag varints.
    pub fn encode_values(&self, entitlements: &[EntRef<'_>], out: &mut Vec<u8>) {
        let mut last_reset = 0i64;
        for (f, e) in self.features.iter().zip(entitlements) {
            if f.current_usage {
                put_varint(out, zigzag(e.current_usage.unwrap_or(0)));
            }
            if f.remaining == RemainingForm::Stored {
                put_varint(out, zigzag(e.remaining.unwrap_or(0)));
            }
            if f.reset_at == ResetForm::Seconds {
                let secs = e.reset_at.as_deref().and_then(parse_reset).unwrap_or(0);
                put_varint(out, zigzag(secs.wrapping_sub(last_reset)));
                last_reset = secs;
            }
        }
    }

    /// Byte length of the numbers at the start of `values` (so records can be walked).
    pub fn values_len(&self, values: &[u8]) -> Option<usize> {
        let mut at = 0;
        for _ in 0..self.stored {
            at += varint_len(values.get(at..)?)?;
        }
        Some(at)
    }

    /// Renders the whole `[…]` array for a customer with these `values`.
    pub fn render_array(&self, values: &[u8], out: &mut BytesMut) {
        self.json.render(values, Fill::default(), out);
    }

    /// Index of `feature_id` among this shape's features.
    pub fn feature_index(&self, feature_id: &str) -> Option<usize> {
        self.features
            .iter()
            .position(|f| *f.feature_id == *feature_id)
    }

    /// Renders one feature's object `{…}` (`index` from [`Shape::feature_index`]).
    pub fn render_feature(&self, index: usize, values: &[u8], out: &mut BytesMut) {
        self.json.render_span(index, values, Fill::default(), out);
    }

    /// The OFREP flag `key` names: a feature's id is its boolean flag (an exact match wins),
    /// `{feature}.limit` and `{feature}.remaining` its integer flags.
    pub fn ofrep_flag(&self, key: &str) -> Option<FlagRef> {
        if let Some(i) = self.feature_index(key) {
            return self.flags.get(i).map(|f| FlagRef(f.access));
        }
        let (feature, suffix) = key.rsplit_once('.')?;
        let spans = self.flags.get(self.feature_index(feature)?)?;
        match suffix {
            "limit" => spans.limit,
            "remaining" => spans.remaining,
            _ => None,
        }
        .map(FlagRef)
    }

    /// A buffer size that fits the OFREP flags.
    pub fn ofrep_len_hint(&self) -> usize {
        self.ofrep.len_hint() + self.ofrep.spans() * 16
    }

    /// Renders every OFREP flag, `[…]`, with `reason` (a JSON string).
    pub fn render_ofrep_flags(&self, values: &[u8], reason: &'static [u8], out: &mut BytesMut) {
        self.ofrep.render(values, Fill { reason }, out);
    }

    /// Renders one OFREP flag's object.
    pub fn render_ofrep_flag(
        &self,
        flag: FlagRef,
        values: &[u8],
        reason: &'static [u8],
        out: &mut BytesMut,
    ) {
        self.ofrep.render_span(flag.0, values, Fill { reason }, out);
    }
}

/// Shapes by content, shared by everything that builds customers (the snapshot loader's
/// workers, the delta path): each distinct shape exists once, and its number is its index.
#[derive(Default)]
pub struct Interner {
    inner: Mutex<InternerInner>,
}

#[derive(Default)]
struct InternerInner {
    by_print: HashMap<u64, Vec<u32>>,
    shapes: Vec<Arc<Shape>>,
}

impl Interner {
    /// An interner already holding `shapes` under their indices.
    pub fn with_shapes(shapes: &[Arc<Shape>]) -> Interner {
        let mut inner = InternerInner::default();
        for s in shapes {
            let print = fingerprint_features(&s.features);
            inner
                .by_print
                .entry(print)
                .or_default()
                .push(inner.shapes.len() as u32);
            inner.shapes.push(s.clone());
        }
        Interner {
            inner: Mutex::new(inner),
        }
    }

    /// The number of `entitlements`' shape, adding it if it is new.
    pub fn intern(&self, print: u64, entitlements: &[EntRef<'_>]) -> (u32, Arc<Shape>) {
        // Poisoning cannot leave the maps half-updated (a push is the last step), so a
        // poisoned lock is still safe to use.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ids) = inner.by_print.get(&print) {
            for &id in ids {
                if let Some(s) = inner.shapes.get(id as usize)
                    && s.matches(entitlements)
                {
                    return (id, s.clone());
                }
            }
        }
        let id = inner.shapes.len() as u32;
        let shape = Arc::new(Shape::of(entitlements));
        inner.by_print.entry(print).or_default().push(id);
        inner.shapes.push(shape.clone());
        (id, shape)
    }

    /// Every shape, indexed by number.
    pub fn shapes(&self) -> Vec<Arc<Shape>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shapes
            .clone()
    }
}

/// A worker's view of the [`Interner`]: shapes it has seen, without taking the lock.
pub struct LocalInterner<'i> {
    shared: &'i Interner,
    seen: HashMap<u64, Vec<(u32, Arc<Shape>)>>,
}

impl<'i> LocalInterner<'i> {
    pub fn new(shared: &'i Interner) -> Self {
        LocalInterner {
            shared,
            seen: HashMap::new(),
        }
    }

    pub fn intern(&mut self, entitlements: &[EntRef<'_>]) -> (u32, &Arc<Shape>) {
        let print = fingerprint(entitlements);
        let seen = self.seen.entry(print).or_default();
        let found = seen.iter().position(|(_, s)| s.matches(entitlements));
        let i = match found {
            Some(i) => i,
            None => {
                seen.push(self.shared.intern(print, entitlements));
                seen.len() - 1
            }
        };
        let (id, shape) = &seen[i];
        (*id, shape)
    }
}

/// A cheap hash of what decides a shape; equal shapes give equal prints.
pub fn fingerprint(entitlements: &[EntRef<'_>]) -> u64 {
    let mut h = Fx::default();
    for e in entitlements {
        h.bytes(e.feature_id.as_bytes());
        let reset = match e.reset_at.as_deref() {
            None => 0,
            Some(s) if parse_reset(s).is_some() => 1,
            Some(s) => {
                h.bytes(s.as_bytes());
                2
            }
        };
        h.feature(
            e.feature_type,
            e.has_access,
            limit_to_wire(e.usage_limit),
            e.current_usage.is_some(),
            remaining_form(e),
            reset,
            e.hard_limit,
        );
    }
    h.0
}

fn fingerprint_features(features: &[FeatureShape]) -> u64 {
    let mut h = Fx::default();
    for f in features {
        h.bytes(f.feature_id.as_bytes());
        let reset = match &f.reset_at {
            ResetForm::Absent => 0,
            ResetForm::Seconds => 1,
            ResetForm::Literal(s) => {
                h.bytes(s.as_bytes());
                2
            }
        };
        h.feature(
            f.feature_type,
            f.has_access,
            f.usage_limit,
            f.current_usage,
            f.remaining,
            reset,
            f.hard_limit,
        );
    }
    h.0
}

/// rustc's FxHash step: fast, and only ever fed data the control plane sent.
#[derive(Default)]
struct Fx(u64);

impl Fx {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w) ^ ((b.len() as u64) << 56));
    }

    #[allow(clippy::too_many_arguments)]
    fn feature(
        &mut self,
        ty: FeatureType,
        has_access: bool,
        limit: Option<Option<i64>>,
        usage: bool,
        remaining: RemainingForm,
        reset: u64,
        hard_limit: Option<bool>,
    ) {
        let limit_tag = match limit {
            None => 0,
            Some(None) => 1,
            Some(Some(_)) => 2,
        };
        let packed = ty as u64
            | (has_access as u64) << 2
            | limit_tag << 3
            | (usage as u64) << 5
            | (remaining as u64) << 6
            | reset << 8
            | (match hard_limit {
                None => 0u64,
                Some(false) => 1,
                Some(true) => 2,
            }) << 10;
        self.word(packed);
        if let Some(Some(n)) = limit {
            self.word(n as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(id: &str, limit: Limit, usage: i64, remaining: Option<i64>) -> Entitlement {
        Entitlement {
            feature_id: id.into(),
            feature_type: FeatureType::Meter,
            has_access: true,
            usage_limit: limit,
            current_usage: Some(usage),
            remaining,
            reset_at: Some("2026-12-01T00:00:00Z".into()),
            hard_limit: Some(true),
        }
    }

    fn render(ents: &[Entitlement]) -> (Vec<u8>, usize) {
        let refs: Vec<EntRef<'_>> = ents.iter().map(EntRef::from).collect();
        let shape = Shape::of(&refs);
        assert!(shape.matches(&refs));
        let mut values = Vec::new();
        shape.encode_values(&refs, &mut values);
        assert_eq!(shape.values_len(&values), Some(values.len()));
        let mut out = BytesMut::new();
        shape.render_array(&values, &mut out);
        for (i, e) in ents.iter().enumerate() {
            let mut one = BytesMut::new();
            shape.render_feature(i, &values, &mut one);
            assert_eq!(&one[..], serde_json::to_vec(e).unwrap(), "feature {i}");
        }
        (out.to_vec(), values.len())
    }

    #[test]
    fn renders_what_serde_json_would_on_awkward_data() {
        let mut odd = meter("we\"ird\\id\u{1}é", Limit::Max(10), 12, Some(0));
        odd.reset_at = Some("2026-02-30T00:00:00Z".into()); // not a date: kept verbatim
        let mut negative = meter("neg", Limit::Max(5), -3, Some(8));
        negative.reset_at = Some("1969-12-31T23:59:59Z".into());
        let mut stored = meter("stored", Limit::Unlimited, 7, Some(42));
        stored.reset_at = Some("2026-01-01T00:00:00+00:00".into());
        let cases = vec![
            vec![],
            vec![
                meter("api-calls", Limit::Max(1000), 45, Some(955)),
                Entitlement {
                    feature_id: "export-data".into(),
                    feature_type: FeatureType::Boolean,
                    has_access: false,
                    usage_limit: Limit::NotApplicable,
                    current_usage: None,
                    remaining: None,
                    reset_at: None,
                    hard_limit: None,
                },
                meter("storage", Limit::Unlimited, i64::MAX, None),
                meter("min", Limit::Max(i64::MIN), i64::MIN, Some(0)),
                Entitlement {
                    feature_id: "team-size".into(),
                    feature_type: FeatureType::Customizable,
                    has_access: true,
                    usage_limit: Limit::Max(5),
                    current_usage: None,
                    remaining: None,
                    reset_at: None,
                    hard_limit: Some(false),
                },
            ],
            vec![odd, negative, stored],
        ];
        for ents in cases {
            let (body, _) = render(&ents);
            assert_eq!(body, serde_json::to_vec(&ents).unwrap());
        }
    }

    #[test]
    fn per_customer_numbers_are_few_bytes() {
        let mut a = meter("a", Limit::Max(1000), 45, Some(955));
        let mut b = meter("b", Limit::Max(100), 3, Some(97));
        a.reset_at = Some("2026-07-14T03:25:11Z".into());
        b.reset_at = a.reset_at.clone();
        let (_, len) = render(&[a, b]);
        // Two usages (1–2 bytes), remaining derived, one reset time (5 bytes) plus a 0 delta.
        assert!(len <= 10, "{len}");
    }

    #[test]
    fn equal_shapes_intern_once() {
        let interner = Interner::default();
        let mut local = LocalInterner::new(&interner);
        let x = [meter("a", Limit::Max(10), 1, Some(9))];
        let y = [meter("a", Limit::Max(10), 5, Some(5))];
        let z = [meter("a", Limit::Max(11), 5, Some(6))];
        let rx: Vec<EntRef<'_>> = x.iter().map(EntRef::from).collect();
        let ry: Vec<EntRef<'_>> = y.iter().map(EntRef::from).collect();
        let rz: Vec<EntRef<'_>> = z.iter().map(EntRef::from).collect();
        let a = local.intern(&rx).0;
        let b = local.intern(&ry).0;
        let c = local.intern(&rz).0;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(interner.shapes().len(), 2);
        let again = Interner::with_shapes(&interner.shapes());
        assert_eq!(again.intern(fingerprint(&rz), &rz).0, c);
    }

    /// The OFREP mapping of docs/entitlements-clients.md, computed independently.
    fn expected_flags(ents: &[Entitlement], reason: &str) -> Vec<serde_json::Value> {
        use serde_json::{Value, json};
        let mut out = Vec::new();
        for e in ents {
            let ty = e.feature_type.as_str();
            let mut meta = serde_json::Map::new();
            meta.insert("featureType".into(), ty.into());
            match e.usage_limit {
                Limit::Max(n) => {
                    meta.insert("usageLimit".into(), n.into());
                }
                Limit::Unlimited => {
                    meta.insert("unlimited".into(), true.into());
                }
                Limit::NotApplicable => {}
            }
            if let Some(u) = e.current_usage {
                meta.insert("currentUsage".into(), u.into());
            }
            if let Some(r) = e.remaining {
                meta.insert("remaining".into(), r.into());
            }
            if let Some(r) = &e.reset_at {
                meta.insert("resetAt".into(), r.clone().into());
            }
            if let Some(h) = e.hard_limit {
                meta.insert("hardLimit".into(), h.into());
            }
            out.push(
                json!({"key": e.feature_id, "value": e.has_access, "reason": reason,
                "variant": if e.has_access {"on"} else {"off"}, "metadata": Value::Object(meta)}),
            );
            let int = |key: String, value: i64, variant: &str| {
                json!({"key": key, "value": value, "reason": reason, "variant": variant,
                    "metadata": {"featureType": ty}})
            };
            match e.usage_limit {
                Limit::Max(n) => out.push(int(format!("{}.limit", e.feature_id), n, "limited")),
                Limit::Unlimited => out.push(int(
                    format!("{}.limit", e.feature_id),
                    UNLIMITED,
                    "unlimited",
                )),
                Limit::NotApplicable => {}
            }
            let remaining = match (e.remaining, e.usage_limit, e.current_usage) {
                (Some(r), Limit::Max(_), _) => Some((r, "limited")),
                (Some(r), _, _) => Some((r, "unlimited")),
                (None, Limit::Unlimited, _) if e.feature_type == FeatureType::Meter => {
                    Some((UNLIMITED, "unlimited"))
                }
                (None, Limit::Max(n), Some(u)) => Some(((n - u).max(0), "limited")),
                _ => None,
            };
            if let Some((r, v)) = remaining {
                out.push(int(format!("{}.remaining", e.feature_id), r, v));
            }
        }
        out
    }

    #[test]
    fn ofrep_flags_follow_the_mapping_and_render_alone() {
        let mut unlimited = meter("storage", Limit::Unlimited, 7, None);
        unlimited.reset_at = Some("2026-01-01T00:00:00+00:00".into());
        let mut over = meter("api-calls", Limit::Max(1000), 1200, Some(0));
        over.has_access = false;
        let ents = vec![
            over,
            Entitlement {
                feature_id: "export-data".into(),
                feature_type: FeatureType::Boolean,
                has_access: false,
                usage_limit: Limit::NotApplicable,
                current_usage: None,
                remaining: None,
                reset_at: None,
                hard_limit: None,
            },
            unlimited,
            meter("odd\"id", Limit::Max(10), 3, Some(42)),
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
        ];
        let refs: Vec<EntRef<'_>> = ents.iter().map(EntRef::from).collect();
        let shape = Shape::of(&refs);
        let mut values = Vec::new();
        shape.encode_values(&refs, &mut values);
        let mut out = BytesMut::new();
        shape.render_ofrep_flags(&values, b"\"TARGETING_MATCH\"", &mut out);
        let got: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
        let want = expected_flags(&ents, "TARGETING_MATCH");
        assert_eq!(got, want);
        for flag in &want {
            let key = flag["key"].as_str().unwrap();
            let r = shape.ofrep_flag(key).unwrap_or_else(|| panic!("{key}"));
            let mut one = BytesMut::new();
            shape.render_ofrep_flag(r, &values, b"\"STATIC\"", &mut one);
            let mut one: serde_json::Value = serde_json::from_slice(&one).unwrap();
            one["reason"] = "TARGETING_MATCH".into();
            assert_eq!(&one, flag, "{key}");
        }
        for missing in [
            "export-data.limit",
            "export-data.remaining",
            "team-size.remaining",
            "api-calls.other",
            "nope",
            "",
            ".limit",
        ] {
            assert_eq!(shape.ofrep_flag(missing), None, "{missing}");
        }
    }
}
