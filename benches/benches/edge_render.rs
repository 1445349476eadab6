//! Rendering a customer's body from its interned shape plus its few numbers (what the edge
//! does per request since issue 8) against cloning a body prepared when the data arrived (what
//! it did before, at ~1 KB of memory per customer).
//!
//! * `render/list_from_shape`: `{"customerId":…,"entitlements":[…]}` rendered into a fresh
//!   buffer from shape + numbers (five features: two METERs, two BOOLEANs, one CUSTOMIZABLE).
//! * `render/list_from_shape_plus_etag`: the same plus the ETag (xxh3 of the body), i.e. all
//!   the per-request work the new layout adds.
//! * `render/feature_from_shape`: one feature's object.
//! * `render/clone_prepared_body_and_etag`: the old per-request work: a `Bytes` clone and a
//!   `HeaderValue` clone.
//! * `render/serde_json_to_vec`: serializing the same entitlements with serde_json, for scale.
//! * `ofrep/single_flag`: one OFREP flag (`api-calls`: a METER's hasAccess and its metadata)
//!   from shape + numbers, as `POST /ofrep/v1/evaluate/flags/{key}` answers it (key lookup
//!   included); `ofrep/bulk_flags_plus_etag`: every flag (11 for the five features) and the
//!   ETag, as the bulk evaluation answers (its stream ticket apart); `ofrep/serde_json_single`:
//!   the same single answer built as a `serde_json::Value` and serialized, for scale.
//!
//! `cargo bench -p tollgate-benches --bench edge_render` (add `-- --quick` for a rough pass).

use std::hint::black_box;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_benches::{customer_id, entitlements_for};
use tollgate_edge::codec::put_json_string;
use tollgate_edge::prepare::{Prepared, etag_for};
use tollgate_edge::shape::{EntRef, Shape};

fn render(c: &mut Criterion) {
    let id = customer_id(123_457);
    let ents = entitlements_for(123_457);
    let refs: Vec<EntRef<'_>> = ents.iter().map(EntRef::from).collect();
    let shape = Shape::of(&refs);
    let mut values = Vec::new();
    shape.encode_values(&refs, &mut values);
    let prepared = Prepared::customer(&id, &ents);

    let list = || {
        let mut buf = BytesMut::with_capacity(shape.body_len_hint() + id.len() + 40);
        buf.put_slice(b"{\"customerId\":");
        put_json_string(&mut buf, &id);
        buf.put_slice(b",\"entitlements\":");
        shape.render_array(&values, &mut buf);
        buf.put_u8(b'}');
        buf.freeze()
    };
    assert_eq!(list(), prepared.body(), "the same bytes either way");
    println!(
        "body {} bytes; per customer: {} bytes of numbers vs {} bytes prepared",
        prepared.body().len(),
        values.len(),
        prepared.body().len() + 18
    );

    let mut g = c.benchmark_group("render");
    g.bench_function("list_from_shape", |b| b.iter(|| black_box(list())));
    g.bench_function("list_from_shape_plus_etag", |b| {
        b.iter(|| {
            let body = list();
            black_box((etag_for(&body), body))
        })
    });
    let feature = shape.feature_index("api-calls").expect("a feature");
    g.bench_function("feature_from_shape", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(256);
            shape.render_feature(black_box(feature), &values, &mut buf);
            black_box(buf.freeze())
        })
    });
    g.bench_function("clone_prepared_body_and_etag", |b| {
        b.iter(|| black_box((prepared.body().clone(), prepared.etag().clone())))
    });
    g.bench_function("serde_json_to_vec", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&ents)).map(|v| v.len())))
    });
    g.finish();

    let mut g = c.benchmark_group("ofrep");
    let single = || {
        let mut buf = BytesMut::with_capacity(256);
        if let Some(flag) = shape.ofrep_flag(black_box("api-calls")) {
            shape.render_ofrep_flag(flag, &values, b"\"TARGETING_MATCH\"", &mut buf);
        }
        buf.freeze()
    };
    let one: serde_json::Value = serde_json::from_slice(&single()).expect("the flag is JSON");
    println!("OFREP single flag: {} bytes", single().len());
    g.bench_function("single_flag", |b| b.iter(|| black_box(single())));
    g.bench_function("bulk_flags_plus_etag", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(shape.ofrep_len_hint() + 16);
            buf.put_slice(b"{\"flags\":");
            shape.render_ofrep_flags(&values, b"\"TARGETING_MATCH\"", &mut buf);
            buf.put_u8(b'}');
            let body = buf.freeze();
            black_box((etag_for(&body), body))
        })
    });
    g.bench_function("serde_json_single", |b| {
        b.iter(|| {
            let e = &ents[0];
            let v = serde_json::json!({
                "key": e.feature_id, "value": e.has_access, "reason": "TARGETING_MATCH",
                "variant": if e.has_access { "on" } else { "off" },
                "metadata": { "featureType": "METER", "usageLimit": one["metadata"]["usageLimit"],
                    "currentUsage": e.current_usage, "remaining": e.remaining,
                    "resetAt": e.reset_at, "hardLimit": e.hard_limit },
            });
            black_box(serde_json::to_vec(&v).map(|v| v.len()))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = render
}
criterion_main!(benches);
