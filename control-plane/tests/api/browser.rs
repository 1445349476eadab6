//! Debian's headless Chromium through chromedriver, for the hosted pages: start it, read what
//! the page logged (a Content-Security-Policy violation is logged as a console error), and
//! keep screenshots for the README when `TOLLGATE_SCREENSHOTS_DIR` is set.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::missing;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver, stopped when dropped together with the browser it started.
pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Killing chromedriver alone orphans Chromium (a dozen processes per test, which then
    /// live on and load the machine). So: ask chromedriver to shut down, which quits its
    /// browsers; then kill whatever is left of its process group (chromedriver leads one of
    /// its own, and Chromium starts in it).
    fn drop(&mut self) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /shutdown HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.driver.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A browser, or `None` (after reporting it through [`missing`]) when Chromium is not
/// installed.
pub async fn start(test: &str) -> Option<Browser> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        missing(
            test,
            "Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)",
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        // The browser log carries console messages, CSP violations among them.
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1000,1100",
                     format!("--user-data-dir={}", profile.path().display())]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver,
                    port,
                    _profile: profile,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no chromedriver session");
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`), which W3C WebDriver lacks.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

impl Browser {
    /// Console messages since the last call (the log is drained by reading it).
    pub async fn console(&self) -> Vec<String> {
        match self.client.issue_cmd(BrowserLog).await {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["level"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect(),
            other => panic!("browser log: {other:?}"),
        }
    }

    /// Fails when the page logged a Content-Security-Policy violation or any other error,
    /// except messages containing one of `expected` (a page answered with 402 on purpose logs
    /// "…responded with a status of 402").
    pub async fn assert_no_console_errors_but(&self, context: &str, expected: &[&str]) {
        let bad: Vec<String> = self
            .console()
            .await
            .into_iter()
            .filter(|m| {
                m.starts_with("SEVERE")
                    || m.contains("Content Security Policy")
                    || m.contains("Refused to")
            })
            .filter(|m| {
                let csp = m.contains("Content Security Policy") || m.contains("Refused to");
                csp || !expected.iter().any(|e| m.contains(e))
            })
            .collect();
        assert!(bad.is_empty(), "{context}: the page logged {bad:#?}");
    }

    /// Fails when the page logged a Content-Security-Policy violation or any other error.
    pub async fn assert_no_console_errors(&self, context: &str) {
        self.assert_no_console_errors_but(context, &[]).await;
    }

    pub async fn text(&self, id: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until element `id` says `want` (after a click the old page may still be showing
    /// an element with the same id for a moment).
    pub async fn wait_text(&self, id: &str, want: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Id(id)).await
                && let Ok(text) = el.text().await
            {
                if text == want {
                    return;
                }
                seen = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("#{id} never said {want:?}; last {seen:?}");
    }

    pub async fn click(&self, id: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Saves a PNG of the page as `name` into `$TOLLGATE_SCREENSHOTS_DIR`, if set (the README's
    /// pictures are made this way; CI leaves it unset so it never rewrites them).
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("TOLLGATE_SCREENSHOTS_DIR") else {
            return;
        };
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}
