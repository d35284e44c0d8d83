//! Headless Chromium driven by ChromeDriver over W3C WebDriver, spoken with plain `reqwest`
//! JSON calls: for the tests that check what a browser does (tests/api/browser.rs: CORS;
//! tests/api/dashboard.rs: the dashboard).
//!
//! Why WebDriver rather than `chromium --dump-dom`: a test awaits the page's own state
//! (`execute/async`, or polling `execute/sync`) instead of guessing how long its fetches
//! take, and it reads the browser console, so an unexpected error fails the test. Why no
//! client crate (`fantoccini`, `thirtyfour`): they bring a second HTTP stack and TLS crates
//! that nothing else in this workspace needs (Cargo.lock has no TLS at all), for the dozen
//! endpoints used here.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install -y chromium
//! chromium-driver`; scripts/test.sh installs them).

use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str =
    "install them with `apt-get install -y chromium chromium-driver` (scripts/test.sh does)";
/// The key of an element reference in W3C WebDriver's JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An element of the page (its WebDriver reference).
pub struct Element(String);

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails with what to do when Chromium or ChromeDriver is missing.
pub fn assert_browser_installed() {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(Path::new(binary).exists(), "{binary} is missing: {INSTALL}");
    }
}

/// ChromeDriver in its own process group (with the Chromium it starts), stopped by that group
/// when dropped, also when the test panics.
pub struct ChromeDriver {
    url: String,
    child: Child,
    client: reqwest::Client,
    dir: TempDir,
}

impl ChromeDriver {
    /// ChromeDriver on a free port, once it says it is ready (a panic with its log after 30 s).
    pub async fn start() -> ChromeDriver {
        assert_browser_installed();
        let dir = TempDir(std::env::temp_dir().join(format!(
            "movierec-browser-{}",
            uuid::Uuid::new_v4().simple()
        )));
        std::fs::create_dir_all(&dir.0).expect("browser folder");
        let port = crate::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.0.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = ChromeDriver {
            url: format!("http://127.0.0.1:{port}"),
            child,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = driver
                .client
                .get(format!("{}/status", driver.url))
                .send()
                .await;
            if let Ok(status) = status {
                let status: Value = status.json().await.expect("status JSON");
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within 30 s:\n{}",
                driver.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// ChromeDriver's log (Chromium's output included), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("chromedriver.log")).unwrap_or_default()
    }

    /// A new headless Chromium with a fresh profile.
    pub async fn session(&self) -> Session {
        let profile = self.dir.0.join("profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = self
            .command(reqwest::Method::POST, "/session", capabilities)
            .await;
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {created}"))
            .to_owned();
        let session = Session {
            path: format!("/session/{id}"),
        };
        self.command(
            reqwest::Method::POST,
            &format!("{}/timeouts", session.path),
            json!({"script": 30_000, "pageLoad": 30_000}),
        )
        .await;
        session
    }

    /// One WebDriver command: its `value`, or a panic with the error and the driver's log.
    pub async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request to chromedriver");
        let status = response.status();
        let answer: Value = response.json().await.expect("WebDriver JSON");
        let value = answer["value"].clone();
        assert!(
            status.is_success(),
            "WebDriver {path}: {status} {value}\n{}",
            self.log()
        );
        value
    }

    /// Opens `url` in `session` (returns after its `load` event).
    pub async fn open(&self, session: &Session, url: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("{}/url", session.path),
            json!({ "url": url }),
        )
        .await;
    }

    /// Waits for the page's `window.result` and returns it.
    pub async fn page_result(&self, session: &Session) -> Value {
        let script = "const done = arguments[arguments.length - 1];\
                      window.result.then(done, (e) => done({ scriptError: String(e) }));";
        self.command(
            reqwest::Method::POST,
            &format!("{}/execute/async", session.path),
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// The console entries since the last call: `(level, message)`.
    pub async fn console(&self, session: &Session) -> Vec<(String, String)> {
        let entries = self
            .command(
                reqwest::Method::POST,
                &format!("{}/se/log", session.path),
                json!({"type": "browser"}),
            )
            .await;
        entries
            .as_array()
            .expect("log entries")
            .iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Runs `script` (a function body: `arguments` holds `args`, `return` gives the value) in
    /// the page and returns its value.
    pub async fn execute(&self, session: &Session, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            &format!("{}/execute/sync", session.path),
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The first element matching the CSS `selector` (a panic when there is none).
    pub async fn find(&self, session: &Session, selector: &str) -> Element {
        let found = self
            .command(
                reqwest::Method::POST,
                &format!("{}/element", session.path),
                json!({ "using": "css selector", "value": selector }),
            )
            .await;
        Element(
            found[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("no element {selector}: {found}"))
                .to_owned(),
        )
    }

    /// Types `text` into `element`, as a user would.
    pub async fn type_into(&self, session: &Session, element: &Element, text: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("{}/element/{}/value", session.path, element.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Clicks `element`.
    pub async fn click(&self, session: &Session, element: &Element) {
        self.command(
            reqwest::Method::POST,
            &format!("{}/element/{}/click", session.path, element.0),
            json!({}),
        )
        .await;
    }

    /// Resizes the window (the viewport a screenshot shows).
    pub async fn set_window_size(&self, session: &Session, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            &format!("{}/window/rect", session.path),
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self, session: &Session) -> Vec<u8> {
        use base64::Engine;
        let encoded = self
            .command(
                reqwest::Method::GET,
                &format!("{}/screenshot", session.path),
                Value::Null,
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("valid base64")
    }

    /// The console's errors (`SEVERE`) since the last call to [`ChromeDriver::console`].
    pub async fn console_errors(&self, session: &Session) -> Vec<String> {
        self.console(session)
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .map(|(_, message)| message)
            .collect()
    }

    /// Quits Chromium (ChromeDriver waits for it to exit).
    pub async fn close(&self, session: Session) {
        self.command(reqwest::Method::DELETE, &session.path, Value::Null)
            .await;
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // SIGKILL: a Chromium that is told to terminate (or was just closed) keeps writing its
        // profile while it shuts down, racing the removal of the folder.
        let group = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
        let _ = self.child.wait();
        // Chromium's processes are not our children: wait until none of the group runs.
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_running(group) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether a process of process group `group` still runs (exited ones, zombies until their
/// parent reaps them, do not count).
fn group_running(group: u32) -> bool {
    let group = group.to_string();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|process| {
        // `/proc/PID/stat`: `pid (comm) state ppid pgrp ...`; comm may hold spaces and ')'.
        let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
            return false;
        };
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = fields.split_whitespace().take(3).collect();
        fields.len() == 3 && fields[0] != "Z" && fields[2] == group
    })
}

/// A browser session (`/session/{id}`).
pub struct Session {
    /// `/session/{id}`.
    pub path: String,
}
