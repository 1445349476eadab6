//! A small SVG latency-percentile plot, HdrHistogram style: the x axis counts "nines"
//! (50%, 90%, 99%, 99.9%, …) so the tail gets as much room as the median; y is latency in µs
//! on a log scale.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::report::RunResult;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
const MAX_NINES: f64 = 5.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn nines(q: f64) -> f64 {
    (-(1.0 - q).max(1e-12).log10()).clamp(0.0, MAX_NINES)
}

pub fn render(title: &str, runs: &[RunResult]) -> String {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let max_us = runs
        .iter()
        .map(|r| r.latency_us.max)
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let top_decade = max_us.log10().ceil();
    let x = |q: f64| LEFT + nines(q) / MAX_NINES * pw;
    let y = |us: f64| TOP + ph - us.max(1.0).log10() / top_decade * ph;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    for (n, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let gx = LEFT + n as f64 / MAX_NINES * pw;
        let _ = write!(
            s,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 15.0
        );
    }
    for d in 0..=(top_decade as u32) {
        let gy = y(10f64.powi(d as i32));
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} us</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            gy + 4.0,
            10u64.pow(d)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + pw / 2.0,
        H - 10.0
    );
    for (i, run) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = run
            .percentiles
            .iter()
            .map(|&(q, us)| format!("{:.1},{:.1}", x(q), y(us as f64)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        let ly = TOP + 12.0 + 15.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{} ({:.0} req/s, p99 {} us)</text>"#,
            LEFT + 10.0,
            ly - 4.0,
            LEFT + 28.0,
            ly,
            escape(&run.label),
            run.requests_per_sec,
            run.latency_us.p99
        );
    }
    s.push_str("</svg>\n");
    s
}

pub fn write(path: &Path, title: &str, runs: &[RunResult]) -> anyhow::Result<()> {
    fs::write(path, render(title, runs)).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_NINES);
    }
}
