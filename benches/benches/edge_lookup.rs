//! The edge's hot path without sockets, next to a baseline, plus snapshot load throughput.
//!
//! * `entitlements_request/*`: `tollgate_edge::http::route` for a known customer (one hot id,
//!   and 4096 ids in rotation so the map is not all in cache), as the first request of a
//!   connection (`edge_known_*`: the key is parsed and hashed) and as a later request on a
//!   keep-alive connection (`*_keepalive`: the key is recognised from the connection's cache),
//!   for an unknown customer (the defaults path, which builds a body per request), and the
//!   baseline: a
//!   `HashMap<String, Bytes>` lookup plus a response around a body of the same size. Read the
//!   edge rows as a multiple of the baseline rows; `part_sha256_of_key` isolates one step of the
//!   edge path (hashing the caller's key) to show where that multiple goes.
//! * `snapshot_load/100k`: a 100,000-customer snapshot (5 entitlements each) from parsed frames
//!   into a live `Store` — the edge side of SPEC §9's "1,000,000 customers in ≤ 2 s".
//!
//! `cargo bench -p tollgate-benches` (add `-- --quick` for a rough pass).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use http::StatusCode;
use http_body_util::BodyExt;
use tollgate_benches::{Baseline, KEY, customer_id, customers, edge_state, load_snapshot, request};
use tollgate_edge::Store;
use tollgate_edge::http::{Connection, route};

const CUSTOMERS: u64 = 100_000;
const ROTATION: u64 = 4_096;

fn body_len(resp: http::Response<http_body_util::Full<bytes::Bytes>>) -> usize {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(resp.into_body().collect());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(c)) => c.to_bytes().len(),
        _ => 0,
    }
}

fn entitlements_request(c: &mut Criterion) {
    let state = Arc::new(edge_state(CUSTOMERS).expect("the bench snapshot loads"));
    let connection = Connection::new(state.clone());
    let hot = request(&customer_id(CUSTOMERS / 2));
    let rotating: Vec<_> = (0..ROTATION)
        .map(|i| request(&customer_id(i.wrapping_mul(7_919) % CUSTOMERS)))
        .collect();
    let unknown = request("cus_never_seen");

    let resp = route(&state, &hot);
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the bench key must be accepted"
    );
    let body_bytes = body_len(resp);
    assert_eq!(route(&state, &unknown).status(), StatusCode::OK);
    let baseline = Baseline::new(CUSTOMERS, body_bytes);
    let baseline_ids: Vec<String> = (0..ROTATION)
        .map(|i| customer_id(i.wrapping_mul(7_919) % CUSTOMERS))
        .collect();
    let hot_id = customer_id(CUSTOMERS / 2);
    println!("known-customer body: {body_bytes} bytes; {CUSTOMERS} customers loaded");

    let mut g = c.benchmark_group("entitlements_request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("edge_known_hot", |b| {
        b.iter(|| route(black_box(&state), black_box(&hot)))
    });
    g.bench_function("edge_known_rotating", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % rotating.len();
            route(black_box(&state), black_box(&rotating[i]))
        })
    });
    g.bench_function("edge_known_hot_keepalive", |b| {
        b.iter(|| connection.respond(black_box(&hot)))
    });
    g.bench_function("edge_known_rotating_keepalive", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % rotating.len();
            connection.respond(black_box(&rotating[i]))
        })
    });
    g.bench_function("edge_unknown_defaults", |b| {
        b.iter(|| route(black_box(&state), black_box(&unknown)))
    });
    g.bench_function("baseline_hashmap_hot", |b| {
        b.iter(|| baseline.respond(black_box(&hot_id)))
    });
    g.bench_function("baseline_hashmap_rotating", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % baseline_ids.len();
            baseline.respond(black_box(&baseline_ids[i]))
        })
    });
    // One part of the edge path, for attribution: the key's SHA-256, done on every request.
    g.bench_function("part_sha256_of_key", |b| {
        b.iter(|| tollgate_shared::keys::hash_key(black_box(KEY)))
    });
    g.finish();
}

fn snapshot_load(c: &mut Criterion) {
    let data = customers(CUSTOMERS);
    let mut g = c.benchmark_group("snapshot_load");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(CUSTOMERS));
    g.bench_function("100k_customers_5_features", |b| {
        b.iter_batched(
            Store::default,
            |store| {
                load_snapshot(&store, black_box(&data)).expect("snapshot loads");
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = entitlements_request, snapshot_load
}
criterion_main!(benches);
