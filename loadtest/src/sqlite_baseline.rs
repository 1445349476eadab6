//! `loadtest sqlite-baseline`: the bare single-row-commit loop the control plane's write path is
//! measured against (issue 6, SPEC §9): one SQLite connection in WAL mode with
//! `synchronous=FULL`, `BEGIN IMMEDIATE; INSERT one row; COMMIT` as fast as it goes, on a file in
//! the given directory — put it on the same disk as the control plane's database. The control
//! plane's group commit should beat it by a wide margin: that is what group commit is for.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::cli::SqliteBaselineArgs;

pub fn run(args: &SqliteBaselineArgs) -> anyhow::Result<()> {
    let dir = tempfile_in(&args.dir)?;
    let path = dir.join("baseline.db");
    let rate = measure(&path, Duration::from_secs_f64(args.secs))?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "sqlite-baseline: {rate:.0} single-row commits/s (WAL, synchronous=FULL) in {}",
        args.dir.display()
    );
    if let Some(out) = &args.json {
        let body = json!({
            "scenario": "sqlite-baseline",
            "commitsPerSec": rate,
            "journalMode": "WAL",
            "synchronous": "FULL",
            "dir": args.dir.display().to_string(),
        });
        std::fs::write(out, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn tempfile_in(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let sub = dir.join(format!("sqlite-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&sub)?;
    Ok(sub)
}

/// Commits per second over `secs`.
pub fn measure(path: &Path, secs: Duration) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);",
    )?;
    let mut stmt = conn.prepare("INSERT INTO t (v) VALUES (?1)")?;
    let started = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < secs {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        stmt.execute([n as i64])?;
        conn.execute_batch("COMMIT")?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
