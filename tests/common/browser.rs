//! Real headless Chromium, driven over WebDriver (chromedriver) from the tests.
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared harness"
)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A chromedriver process; `None` when Chromium is not installed outside CI (a failure in CI).
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub async fn start() -> Option<Driver> {
        let exists = |p: &str| std::path::Path::new(p).exists();
        if !exists("/usr/bin/chromedriver") || !exists("/usr/bin/chromium") {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but chromium/chromedriver are missing: run the suite through scripts/test"
                );
            }
            eprintln!(
                "chromium or chromedriver missing: browser test not run (scripts/test installs them)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that dropping the driver also ends every browser it started.
        let child = Command::new("/usr/bin/chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        // Held from here on, so that a driver that never answers is still ended (Drop).
        let driver = Driver {
            child,
            url: url.clone(),
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Some(driver);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not come up on {url}");
    }

    /// A fresh browser with its own profile (cookies are not shared between two of them).
    pub async fn browser(&self) -> Client {
        self.browser_downloading_to(None).await
    }

    /// A fresh browser that saves downloads, without asking, into `downloads`.
    pub async fn browser_downloading_to(&self, downloads: Option<&std::path::Path>) -> Client {
        let profile = tempfile::tempdir().unwrap().keep();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.display())],
                "prefs": downloads.map(|d| json!({
                    "download.default_directory": d.display().to_string(),
                    "download.prompt_for_download": false,
                })).unwrap_or(json!({})),
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the Chromium processes it started, even when a test failed midway.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Waits for an element, up to 10 s (WebDriver's own wait, polling the page).
pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// Writes a screenshot to test-artifacts/NAME.png.
pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits, up to 10 s, until the text of the element matching `css` satisfies `ok`, and returns
/// it. Tolerates the page being replaced meanwhile (a form that navigates): the element found a
/// moment ago may belong to the page being left.
pub async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
            && ok(&text)
        {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the text of {css}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
