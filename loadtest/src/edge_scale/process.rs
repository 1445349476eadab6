//! The edge under test as a child process: started with the scenario's flags, its address read
//! from the "listening on" line it prints, its memory read from `/proc` (Linux).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How many of the edge's last output lines are kept for reports and errors.
const KEPT_LINES: usize = 200;

pub struct EdgeProcess {
    child: Child,
    pub addr: String,
    lines: Arc<Mutex<VecDeque<String>>>,
}

/// Memory figures of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss: u64,
    /// Peak resident set size since start or the last [`reset_peak`] (`VmHWM`).
    pub peak: u64,
}

impl EdgeProcess {
    pub fn start(bin: &Path, args: &[String]) -> anyhow::Result<EdgeProcess> {
        let mut child = Command::new(bin)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("LOADTEST_EDGE_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("the edge's stdout")?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let kept = lines.clone();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !told && line.contains("listening on http://") {
                    told = tx.send(line.clone()).is_ok();
                }
                if let Ok(mut k) = kept.lock() {
                    if k.len() == KEPT_LINES {
                        k.pop_front();
                    }
                    k.push_back(line);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let rest = line.split("listening on http://").nth(1).unwrap_or("");
                    break rest.split_whitespace().next().unwrap_or("").to_owned();
                }
                Err(_) if Instant::now() > deadline => bail!("the edge did not start listening"),
                Err(_) => {
                    if let Some(status) = child.try_wait()? {
                        bail!("the edge exited early: {status}");
                    }
                }
            }
        };
        Ok(EdgeProcess { child, addr, lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.pid())
    }

    /// Resets the peak RSS (`VmHWM`) so the next reading covers only what follows.
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .context("resetting the edge's peak RSS (/proc/PID/clear_refs)")
    }

    /// The edge's last output lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().filter(|s| s.contains(needle)).cloned().collect())
            .unwrap_or_default()
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let n: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed /proc status line")?
            .parse()?;
        Ok(n * 1024)
    };
    Ok(Memory {
        rss: kb("VmRSS:")?,
        peak: kb("VmHWM:")?,
    })
}

/// `edge` next to the running `loadtest` binary (both are built into the same `target/` dir).
pub fn default_edge_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("edge")))
        .unwrap_or_else(|| PathBuf::from("edge"))
}
