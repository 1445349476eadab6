//! A synthetic snapshot, as the control plane would send it for N customers of the example
//! catalog (`catalog/example.json`): five features per customer in identifier order — two
//! METERs with usage and `resetAt`, two BOOLEANs, one CUSTOMIZABLE — spread over the free,
//! pro and enterprise plans, with per-customer usage and billing-period ends. The frames are
//! the real protocol-1 frames (`tollgate_shared::sync`), serialized exactly as the control plane
//! serializes them.

use bytes::Bytes;
use tollgate_shared::entitlement::Limit;
use tollgate_shared::keys::{hash_hex, hash_key};
use tollgate_shared::sync::{
    EdgeKey, Frame, FrameBody, ModeDefaults, SNAPSHOT_CHUNK, SnapshotBegin,
};
use tollgate_shared::{CustomerEntitlements, Entitlement, FeatureType, KeyKind, Mode};

/// A plan's grants: api-calls limit, max-projects limit (`None` = unlimited), team size,
/// export-data, sso.
struct Plan {
    api_calls: Option<i64>,
    max_projects: Option<i64>,
    team_size: i64,
    export: bool,
    sso: bool,
}

const FREE: Plan = Plan {
    api_calls: Some(100),
    max_projects: Some(3),
    team_size: 1,
    export: false,
    sso: false,
};
const PRO: Plan = Plan {
    api_calls: Some(10_000),
    max_projects: Some(100),
    team_size: 5,
    export: true,
    sso: false,
};
const ENTERPRISE: Plan = Plan {
    api_calls: None,
    max_projects: None,
    team_size: 50,
    export: true,
    sso: true,
};

/// 2026-07-01T00:00:00Z: billing periods end within the 30 days after it.
const PERIOD_BASE: i64 = 1_782_864_000;

/// splitmix64: cheap, deterministic per-customer numbers.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn meter(id: &str, limit: Option<i64>, usage: i64, reset_at: &str) -> Entitlement {
    let (has_access, usage_limit, remaining) = match limit {
        Some(max) => (usage < max, Limit::Max(max), Some((max - usage).max(0))),
        None => (true, Limit::Unlimited, None),
    };
    Entitlement {
        feature_id: id.into(),
        feature_type: FeatureType::Meter,
        has_access,
        usage_limit,
        current_usage: Some(usage),
        remaining,
        reset_at: Some(reset_at.into()),
        hard_limit: Some(true),
    }
}

fn boolean(id: &str, has_access: bool) -> Entitlement {
    Entitlement {
        feature_id: id.into(),
        feature_type: FeatureType::Boolean,
        has_access,
        usage_limit: Limit::NotApplicable,
        current_usage: None,
        remaining: None,
        reset_at: None,
        hard_limit: None,
    }
}

fn customizable(id: &str, limit: i64) -> Entitlement {
    Entitlement {
        feature_id: id.into(),
        feature_type: FeatureType::Customizable,
        has_access: true,
        usage_limit: Limit::Max(limit),
        current_usage: None,
        remaining: None,
        reset_at: None,
        hard_limit: None,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the control plane's `resetAt` format.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Customer `i`'s entitlements: 60 % free, 30 % pro, 10 % enterprise; usage up to 120 % of
/// the limit (so some meters are exhausted), one billing-period end shared by both meters.
pub fn entitlements_for(i: u64) -> Vec<Entitlement> {
    let r = mix(i);
    let plan = match i % 10 {
        0..=5 => &FREE,
        6..=8 => &PRO,
        _ => &ENTERPRISE,
    };
    let usage = |limit: Option<i64>, salt: u64| -> i64 {
        let cap = limit.map_or(1_000_000, |l| l + l / 5).max(1) as u64;
        (mix(r ^ salt) % cap) as i64
    };
    let reset_at = rfc3339(PERIOD_BASE + (r % (30 * 86_400)) as i64);
    vec![
        meter(
            "api-calls",
            plan.api_calls,
            usage(plan.api_calls, 1),
            &reset_at,
        ),
        boolean("export-data", plan.export),
        meter(
            "max-projects",
            plan.max_projects,
            usage(plan.max_projects, 2),
            &reset_at,
        ),
        boolean("sso", plan.sso),
        customizable("team-size", plan.team_size),
    ]
}

/// The publishable key the scenario's requests carry; the snapshot lists its hash.
pub const KEY: &str = "pk_test_edgeScaleLoadtestKey0000000000";
/// The edge sync key the edge is started with (the stand-in accepts only it).
pub const SYNC_KEY: &str = "esk_edgeScaleLoadtestSyncKey000000000";

/// `snapshot_begin` at `version` for `customers` customers.
pub fn begin_line(version: u64, customers: u64) -> Bytes {
    let defaults = vec![
        ModeDefaults {
            mode: Mode::Test,
            entitlements: vec![
                meter("api-calls", FREE.api_calls, 0, &rfc3339(PERIOD_BASE)),
                boolean("export-data", false),
                meter("max-projects", FREE.max_projects, 0, &rfc3339(PERIOD_BASE)),
                boolean("sso", false),
                customizable("team-size", FREE.team_size),
            ],
        },
        ModeDefaults {
            mode: Mode::Live,
            entitlements: vec![],
        },
    ];
    Bytes::from(
        Frame::new(FrameBody::SnapshotBegin(SnapshotBegin {
            version,
            customer_count: customers,
            keys: vec![EdgeKey {
                hash: hash_hex(&hash_key(KEY)),
                mode: Mode::Test,
                kind: KeyKind::Publishable,
            }],
            token_keys: vec![],
            defaults,
        }))
        .to_line(),
    )
}

pub fn end_line(version: u64) -> Bytes {
    Bytes::from(Frame::new(FrameBody::SnapshotEnd { version }).to_line())
}

pub fn heartbeat_line(version: u64) -> Bytes {
    Bytes::from(Frame::new(FrameBody::Heartbeat { version }).to_line())
}

/// The `snapshot_chunk` lines for customers `{prefix}0 … {prefix}{n-1}`, `SNAPSHOT_CHUNK` per
/// line as the control plane sends them, built on `threads` threads.
pub fn chunk_lines(prefix: &str, n: u64, threads: usize) -> Vec<Bytes> {
    let chunk = SNAPSHOT_CHUNK as u64;
    let chunks = n.div_ceil(chunk);
    let threads = threads.max(1) as u64;
    let mut parts: Vec<Vec<Bytes>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut c = t;
                    while c < chunks {
                        let customers = (c * chunk..((c + 1) * chunk).min(n))
                            .map(|i| CustomerEntitlements {
                                mode: Mode::Test,
                                customer_id: format!("{prefix}{i}"),
                                entitlements: entitlements_for(i),
                            })
                            .collect();
                        let line = Frame::new(FrameBody::SnapshotChunk { customers }).to_line();
                        out.push((c, Bytes::from(line)));
                        c += threads;
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            if let Ok(part) = h.join() {
                parts.push(part.into_iter().map(|(_, b)| b).collect());
            }
        }
    });
    // Thread t made chunks t, t + T, t + 2T, …: interleave them back into order.
    let mut lines = Vec::with_capacity(chunks as usize);
    let mut iters: Vec<_> = parts.into_iter().map(Vec::into_iter).collect();
    'outer: loop {
        for it in &mut iters {
            match it.next() {
                Some(line) => lines.push(line),
                None => break 'outer,
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_at_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(PERIOD_BASE), "2026-07-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn chunks_are_in_order_and_complete() {
        let lines = chunk_lines("c", 4_500, 2);
        assert_eq!(lines.len(), 3);
        let mut ids = Vec::new();
        for line in &lines {
            let frame: Frame = serde_json::from_slice(line).expect("a frame");
            let FrameBody::SnapshotChunk { customers } = frame.body else {
                panic!("not a chunk")
            };
            ids.extend(customers.into_iter().map(|c| c.customer_id));
        }
        let expected: Vec<String> = (0..4_500).map(|i| format!("c{i}")).collect();
        assert_eq!(ids, expected);
        let e = entitlements_for(7);
        assert_eq!(e.len(), 5);
        assert_eq!(e[0].feature_id, "api-calls");
        assert_eq!(e[4].feature_type, FeatureType::Customizable);
    }
}
