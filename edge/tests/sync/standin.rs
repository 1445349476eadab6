//! An in-process stand-in control plane that speaks the real sync protocol, with the knobs the
//! tests need: what it holds (customers, keys, deltas), whether it answers, and a log of the
//! `since` every stream asked with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame as BodyFrame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tollgate_shared::entitlement::Limit;
use tollgate_shared::keys::{hash_hex, hash_key};
use tollgate_shared::server::{ServerLimits, TlsConfig};
use tollgate_shared::sync::{
    Change, Delta, EdgeKey, Frame, FrameBody, ModeDefaults, STREAM_PATH, SnapshotBegin,
};
use tollgate_shared::{CustomerEntitlements, Entitlement, FeatureType, KeyKind, Mode};

pub const SYNC_KEY: &str = "esk_standinSyncKey00000000000000";

/// A customer with one meter at `usage` of 100.
pub fn customer(id: &str, usage: i64) -> CustomerEntitlements {
    CustomerEntitlements {
        mode: Mode::Test,
        customer_id: id.into(),
        entitlements: vec![
            Entitlement {
                feature_id: "api-calls".into(),
                feature_type: FeatureType::Meter,
                has_access: usage < 100,
                usage_limit: Limit::Max(100),
                current_usage: Some(usage),
                remaining: Some((100 - usage).max(0)),
                reset_at: Some("2026-12-01T00:00:00Z".into()),
                hard_limit: Some(true),
            },
            Entitlement {
                feature_id: "sso".into(),
                feature_type: FeatureType::Boolean,
                has_access: usage % 2 == 0,
                usage_limit: Limit::NotApplicable,
                current_usage: None,
                remaining: None,
                reset_at: None,
                hard_limit: None,
            },
        ],
    }
}

pub fn key(k: &str) -> EdgeKey {
    key_of(k, Mode::Test, KeyKind::Publishable)
}

pub fn key_of(k: &str, mode: Mode, kind: KeyKind) -> EdgeKey {
    EdgeKey {
        hash: hash_hex(&hash_key(k)),
        mode,
        kind,
    }
}

/// What the stand-in holds.
pub struct World {
    /// The version a snapshot is taken at, and its contents.
    pub version: u64,
    pub customers: Vec<CustomerEntitlements>,
    pub keys: Vec<EdgeKey>,
    /// Deltas after `oldest_resumable`: a stream `since` a version in
    /// `oldest_resumable..=version` gets only deltas; any other gets a snapshot.
    pub deltas: Vec<Delta>,
    pub oldest_resumable: u64,
    /// `false`: answer every stream with 503.
    pub up: bool,
    /// Send every frame through [`reordered`].
    pub reorder: bool,
    /// Customer-token verification keys (base64url Ed25519 public keys).
    pub token_keys: Vec<String>,
    /// Test mode's defaults: what a customer the edge never heard of gets.
    pub defaults: Vec<Entitlement>,
}

impl World {
    /// `customers` and `keys` at `version`, every delta resumable, answering.
    pub fn at(version: u64, customers: Vec<CustomerEntitlements>, keys: Vec<EdgeKey>) -> World {
        World {
            version,
            customers,
            keys,
            deltas: vec![],
            oldest_resumable: version,
            up: true,
            reorder: false,
            token_keys: vec![],
            defaults: vec![],
        }
    }
}

/// Frames as another writer might send them: keys in another order, spaces, CRLF line ends.
/// Still protocol 1, so an edge must read them.
pub fn reordered(line: Bytes) -> Bytes {
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    let text = format!(
        "{{ \"frame\": {{ \"data\": {}, \"type\": {} }}, \"protocol\": {} }}\r\n",
        v["frame"]["data"], v["frame"]["type"], v["protocol"]
    );
    Bytes::from(text)
}

pub struct StandIn {
    pub addr: SocketAddr,
    scheme: &'static str,
    world: Arc<Mutex<World>>,
    /// `since` of every stream request, in order.
    requests: Arc<Mutex<Vec<Option<u64>>>>,
    /// Bumped when deltas are added (streams send them) or streams must end.
    changed: watch::Sender<(u64, u64)>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    pub async fn start(world: World) -> StandIn {
        StandIn::start_with(world, None).await
    }

    /// Serves through the shared accept loop, over HTTPS when `tls` is given.
    pub async fn start_with(world: World, tls: Option<TlsConfig>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let world = Arc::new(Mutex::new(world));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (changed, _) = watch::channel((0u64, 0u64));
        let state = (world.clone(), requests.clone(), changed.clone());
        let task = tokio::spawn(async move {
            let _ = tollgate_shared::server::serve(
                listener,
                move |_| {
                    let state = state.clone();
                    service_fn(move |req: Request<Incoming>| {
                        let resp = respond(&state, &req);
                        async move { Ok::<_, Infallible>(resp) }
                    })
                },
                ServerLimits::default(),
                tls,
                std::future::pending(),
                Duration::from_secs(1),
            )
            .await;
        });
        StandIn {
            addr,
            scheme,
            world,
            requests,
            changed,
            task,
        }
    }

    pub fn url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}", self.addr.port()),
            _ => format!("http://{}", self.addr),
        }
    }

    /// What the stand-in holds, to change by hand.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<Option<u64>> {
        self.requests.lock().unwrap().clone()
    }

    /// Commits one delta at the next version (open streams send it at once).
    pub fn commit(&self, changes: Vec<Change>) -> u64 {
        let mut w = self.world.lock().unwrap();
        w.version += 1;
        let version = w.version;
        for c in &changes {
            match c {
                Change::Customer(c) => {
                    w.customers.retain(|x| x.customer_id != c.customer_id);
                    w.customers.push(c.clone());
                }
                Change::CustomerRemoved { customer_id, .. } => {
                    w.customers.retain(|x| x.customer_id != *customer_id)
                }
                Change::KeyAdded(k) => w.keys.push(k.clone()),
                Change::KeyRevoked { hash } => w.keys.retain(|k| k.hash != *hash),
                Change::Defaults(_) => {}
            }
        }
        w.deltas.push(Delta { version, changes });
        drop(w);
        self.changed.send_modify(|(v, _)| *v = version);
        version
    }

    /// Starts or stops answering; stopping also ends every open stream.
    pub fn set_up(&self, up: bool) {
        self.world.lock().unwrap().up = up;
        if !up {
            self.changed.send_modify(|(_, generation)| *generation += 1);
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.changed.send_modify(|(_, generation)| *generation += 1);
        self.task.abort();
    }
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(BodyFrame::data(b))))
    }
}

type State = (
    Arc<Mutex<World>>,
    Arc<Mutex<Vec<Option<u64>>>>,
    watch::Sender<(u64, u64)>,
);

fn respond(state: &State, req: &Request<Incoming>) -> Response<Either<ChannelBody, Full<Bytes>>> {
    let plain = |code| {
        let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
        *r.status_mut() = code;
        r
    };
    let (world, requests, changed) = state;
    if req.uri().path() != STREAM_PATH {
        return plain(StatusCode::NOT_FOUND);
    }
    let auth = format!("Bearer {SYNC_KEY}");
    if req.headers().get("authorization").map(|v| v.as_bytes()) != Some(auth.as_bytes()) {
        return plain(StatusCode::UNAUTHORIZED);
    }
    if !world.lock().unwrap().up {
        return plain(StatusCode::SERVICE_UNAVAILABLE);
    }
    let since = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("since="))
            .and_then(|v| v.parse::<u64>().ok())
    });
    requests.lock().unwrap().push(since);
    let (tx, rx) = mpsc::channel(64);
    let odd = req.uri().path() == STREAM_PATH && world.lock().unwrap().reorder;
    tokio::spawn(feed(world.clone(), changed.subscribe(), since, tx, odd));
    Response::new(Either::Left(ChannelBody(rx)))
}

fn line(body: FrameBody) -> Bytes {
    Bytes::from(Frame::new(body).to_line())
}

async fn feed(
    world: Arc<Mutex<World>>,
    mut changed: watch::Receiver<(u64, u64)>,
    since: Option<u64>,
    tx: mpsc::Sender<Bytes>,
    odd: bool,
) {
    let generation = changed.borrow_and_update().1;
    let (mut lines, mut last) = {
        let w = world.lock().unwrap();
        match since {
            Some(v) if v >= w.oldest_resumable && v <= w.version => {
                let lines: Vec<Bytes> = w
                    .deltas
                    .iter()
                    .filter(|d| d.version > v)
                    .map(|d| line(FrameBody::Delta(d.clone())))
                    .collect();
                (lines, w.version)
            }
            _ => {
                let mut lines = vec![line(FrameBody::SnapshotBegin(SnapshotBegin {
                    version: w.version,
                    customer_count: w.customers.len() as u64,
                    keys: w.keys.clone(),
                    token_keys: w.token_keys.clone(),
                    defaults: vec![ModeDefaults {
                        mode: Mode::Test,
                        entitlements: w.defaults.clone(),
                    }],
                }))];
                for chunk in w.customers.chunks(2) {
                    lines.push(line(FrameBody::SnapshotChunk {
                        customers: chunk.to_vec(),
                    }));
                }
                lines.push(line(FrameBody::SnapshotEnd { version: w.version }));
                (lines, w.version)
            }
        }
    };
    loop {
        for l in lines.drain(..) {
            let l = if odd { reordered(l) } else { l };
            if tx.send(l).await.is_err() {
                return;
            }
        }
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() || changed.borrow_and_update().1 != generation {
                    return;
                }
                let w = world.lock().unwrap();
                lines.extend(
                    w.deltas
                        .iter()
                        .filter(|d| d.version > last)
                        .map(|d| line(FrameBody::Delta(d.clone()))),
                );
                last = w.version;
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                lines.push(line(FrameBody::Heartbeat { version: last }));
            }
        }
    }
}
