//! Server CPU time per request, read from Linux's `/proc`: a second view of efficiency next to
//! throughput. On a small, shared machine the generator and the server compete for the same
//! cores, so req/s moves with whatever else runs; CPU microseconds per request much less so.
//!
//! Times are the kernel's tick counts (`utime`/`stime`, in `USER_HZ` = 100 ticks per second on
//! every Linux ABI), so a run should last seconds, not milliseconds. Elsewhere than Linux, or
//! when `/proc` cannot be read, there is simply no figure.

use std::fs;
use std::path::Path;

use serde::Serialize;

const TICKS_PER_SEC: f64 = 100.0;

/// Whose CPU time to read.
#[derive(Debug, Clone)]
pub enum Source {
    /// A whole process (all its threads, living or exited), e.g. the edge.
    Process(u32),
    /// Threads of this process whose name starts with the prefix, e.g. the in-process baseline.
    OwnThreads(&'static str),
}

/// User and system CPU time, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    user: u64,
    system: u64,
}

/// CPU time per request, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerRequest {
    pub user_us: f64,
    pub system_us: f64,
    pub total_us: f64,
}

impl Ticks {
    pub fn read(source: &Source) -> Option<Ticks> {
        match source {
            Source::Process(pid) => {
                parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
            }
            Source::OwnThreads(prefix) => {
                let mut sum = Ticks::default();
                for task in fs::read_dir(Path::new("/proc/self/task")).ok()? {
                    let stat = task.ok()?.path().join("stat");
                    // A thread may exit between listing and reading: skip it.
                    let Ok(text) = fs::read_to_string(stat) else {
                        continue;
                    };
                    if comm(&text).is_some_and(|c| c.starts_with(prefix)) {
                        let t = parse_stat(&text)?;
                        sum.user += t.user;
                        sum.system += t.system;
                    }
                }
                Some(sum)
            }
        }
    }

    /// The time spent between an `earlier` reading and this one.
    pub fn since(self, earlier: Ticks) -> Ticks {
        Ticks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn plus(self, other: Ticks) -> Ticks {
        Ticks {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }

    /// This much time spread over `requests`; `None` without requests.
    pub fn per_request(self, requests: u64) -> Option<PerRequest> {
        if requests == 0 {
            return None;
        }
        let us = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / requests as f64;
        Some(PerRequest {
            user_us: us(self.user),
            system_us: us(self.system),
            total_us: us(self.user + self.system),
        })
    }
}

/// The thread or process name: the text between the first `(` and the last `)`.
fn comm(stat: &str) -> Option<&str> {
    Some(&stat[stat.find('(')? + 1..stat.rfind(')')?])
}

/// `utime` and `stime` are fields 14 and 15 of `/proc/.../stat`, counted from the pid; the
/// name (field 2) may contain spaces and parentheses, so count from after its last `)`.
fn parse_stat(stat: &str) -> Option<Ticks> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    Some(Ticks {
        user: fields.next()?.parse().ok()?,
        system: fields.next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_names() {
        let line = "42 (a) b (c)) R 1 1 1 0 -1 4194304 158 0 0 0 250 75 0 0 20 0 1 0 3586 31 391";
        assert_eq!(comm(line), Some("a) b (c)"));
        assert_eq!(
            parse_stat(line),
            Some(Ticks {
                user: 250,
                system: 75
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn per_request_is_microseconds() {
        let before = Ticks {
            user: 100,
            system: 50,
        };
        let after = Ticks {
            user: 200,
            system: 60,
        };
        let spent = after.since(before);
        let p = spent.per_request(100_000).expect("requests");
        assert!((p.user_us - 10.0).abs() < 1e-9);
        assert!((p.system_us - 1.0).abs() < 1e-9);
        assert!(
            (spent
                .plus(spent)
                .per_request(100_000)
                .expect("requests")
                .total_us
                - 22.0)
                .abs()
                < 1e-9
        );
        assert!(spent.per_request(0).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        assert!(Ticks::read(&Source::Process(std::process::id())).is_some());
        assert!(Ticks::read(&Source::OwnThreads("no-such-thread")).is_some());
    }
}
