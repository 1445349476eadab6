//! The steps of one edge entitlement request, one at a time, next to the alternatives they were
//! chosen over — attribution for `edge_lookup`'s `route` numbers.
//!
//! `cargo bench -p tollgate-benches --bench edge_parts` (add `-- --quick` for a rough pass).
//! Most rows are single-threaded. Costs that only show when cores contend for one cache line
//! (a shared request counter, an `Arc` cloned by every request) get `*_2_threads` rows: two
//! threads doing the same step at once, time per step per thread. On a 1-core machine they
//! measure nothing useful.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE, ETAG,
};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::Full;
use tollgate_benches::{KEY, customer_id, edge_state};
use tollgate_edge::auth::{KeyCache, authenticate};
use tollgate_edge::http::parse_query;
use tollgate_shared::keys::{KeyHash, credential_from_header, hash_key};

const CUSTOMERS: u64 = 100_000;

fn auth_parts(c: &mut Criterion) {
    let state = edge_state(CUSTOMERS).expect("the bench snapshot loads");
    let root = state.store.root();
    let header = format!("Bearer {KEY}");
    let mut g = c.benchmark_group("parts_auth");
    g.bench_function("credential_from_header", |b| {
        b.iter(|| credential_from_header(black_box(header.as_bytes())).map(|c| c.len()))
    });
    g.bench_function("sha256_of_key", |b| b.iter(|| hash_key(black_box(KEY))));
    g.bench_function("authenticate_uncached", |b| {
        b.iter(|| authenticate(black_box(&root.auth), Some(black_box(header.as_bytes()))))
    });
    let cache = KeyCache::default();
    g.bench_function("authenticate_keepalive_cache", |b| {
        b.iter(|| cache.authenticate(black_box(&root.auth), Some(black_box(header.as_bytes()))))
    });
    let hashes: Vec<KeyHash> = (0..4).map(|i| hash_key(&format!("{KEY}{i}"))).collect();
    let probe = hashes[2];
    let sip: HashMap<KeyHash, u8> = hashes.iter().map(|h| (*h, 1)).collect();
    let mut fold: HashMap<KeyHash, u8, foldhash::fast::RandomState> = HashMap::default();
    fold.extend(hashes.iter().map(|h| (*h, 1)));
    g.bench_function("key_map_get_siphash", |b| {
        b.iter(|| sip.get(black_box(&probe)).copied())
    });
    g.bench_function("key_map_get_foldhash", |b| {
        b.iter(|| fold.get(black_box(&probe)).copied())
    });
    g.finish();
}

fn lookup_parts(c: &mut Criterion) {
    let state = Arc::new(edge_state(CUSTOMERS).expect("the bench snapshot loads"));
    let id = customer_id(CUSTOMERS / 2);
    let body = Bytes::from(vec![b'x'; 590]);
    let sip: papaya::HashMap<Box<str>, Bytes, RandomState> = papaya::HashMap::default();
    let fold: papaya::HashMap<Box<str>, Bytes, foldhash::fast::RandomState> =
        papaya::HashMap::default();
    for i in 0..CUSTOMERS {
        sip.pin().insert(customer_id(i).into(), body.clone());
        fold.pin().insert(customer_id(i).into(), body.clone());
    }
    let mut g = c.benchmark_group("parts_lookup");
    g.bench_function("arc_state_clone_drop", |b| {
        b.iter(|| drop(black_box(Arc::clone(black_box(&state)))))
    });
    g.bench_function("arcswap_root_load", |b| {
        b.iter(|| black_box(state.store.root()).version)
    });
    g.bench_function("papaya_pin_get_siphash", |b| {
        b.iter(|| sip.pin().get(black_box(id.as_str())).map(Bytes::len))
    });
    g.bench_function("papaya_pin_get_foldhash", |b| {
        b.iter(|| fold.pin().get(black_box(id.as_str())).map(Bytes::len))
    });
    let std_sip = RandomState::new();
    let std_fold = foldhash::fast::RandomState::default();
    g.bench_function("hash_customer_id_siphash", |b| {
        b.iter(|| std_sip.hash_one(black_box(id.as_str())))
    });
    g.bench_function("hash_customer_id_foldhash", |b| {
        b.iter(|| std_fold.hash_one(black_box(id.as_str())))
    });
    g.finish();
}

/// What the edge did before `tollgate_edge::http::parse_query`: decode every pair.
fn query_form_urlencoded(q: &str) -> Option<usize> {
    let mut customer = None;
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        if matches!(&*k, "customerId" | "customer_id") {
            customer = Some(v);
        }
    }
    customer.map(|c| c.len())
}

fn request_parts(c: &mut Criterion) {
    let q = format!("customerId={}", customer_id(CUSTOMERS / 2));
    let etag = HeaderValue::from_static("\"0123456789abcdef\"");
    let body = Bytes::from(vec![b'x'; 590]);
    let mut g = c.benchmark_group("parts_request");
    g.bench_function("query_form_urlencoded", |b| {
        b.iter(|| query_form_urlencoded(black_box(&q)))
    });
    g.bench_function("query_edge_parse_query", |b| {
        b.iter(|| parse_query(black_box(&q)).customer_id.map(|c| c.len()))
    });
    g.bench_function("headers_insert_5", |b| {
        b.iter(|| {
            let mut resp = Response::new(Full::new(body.clone()));
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(ETAG, etag.clone());
            h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            h.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("ETag"),
            );
            resp
        })
    });
    let mut template = HeaderMap::with_capacity(5);
    template.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    template.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    template.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    template.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
    g.bench_function("headers_clone_template_plus_etag", |b| {
        b.iter(|| {
            let mut resp = Response::new(Full::new(body.clone()));
            *resp.headers_mut() = template.clone();
            resp.headers_mut().insert(ETAG, etag.clone());
            resp
        })
    });
    g.bench_function("response_1_header", |b| {
        b.iter(|| {
            let mut resp = Response::new(Full::new(body.clone()));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        })
    });
    g.finish();
}

/// Runs `step` `iters` times on each of two threads at once; the wall time of the slower one.
fn two_threads(iters: u64, step: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| (0..iters).for_each(|_| step()));
        }
    });
    start.elapsed()
}

fn contention_parts(c: &mut Criterion) {
    static SHARED_COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = Arc::new(edge_state(10).expect("the bench snapshot loads"));
    let mut g = c.benchmark_group("parts_contention");
    g.bench_function("count_request_shared_atomic_2_threads", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                SHARED_COUNTER.fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    g.bench_function("count_request_edge_metrics_2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, || tollgate_edge::metrics::request(200)))
    });
    g.bench_function("arc_state_clone_drop_2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, || drop(black_box(Arc::clone(&state)))))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = auth_parts, lookup_parts, request_parts, contention_parts
}
criterion_main!(benches);
