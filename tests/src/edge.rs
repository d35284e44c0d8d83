//! The edge worker in real workerd (`wrangler dev`), and a scripted origin for the cases the
//! real origin cannot stage on demand (a one-second `s-maxage`, a 500, a hang).

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A worker running in `wrangler dev`, stopped (with its whole process group) when dropped.
pub struct EdgeServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    _state: tempdir::TempDir,
}

mod tempdir {
    /// A folder removed when dropped.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The purge secret the tests' workers are started with.
pub const PURGE_SECRET: &str = "test-purge-secret";

impl EdgeServer {
    /// Starts the built worker (scripts/build-edge.sh) in front of `origin_url`.
    pub async fn start(origin_url: &str) -> EdgeServer {
        EdgeServer::start_with(origin_url, &[]).await
    }

    /// Like [`EdgeServer::start`], with extra worker variables (`--var NAME:VALUE`, e.g.
    /// `("CORS_ALLOWED_ORIGINS", "http://127.0.0.1:5173")`), which override `wrangler.toml`.
    pub async fn start_with(origin_url: &str, vars: &[(&str, &str)]) -> EdgeServer {
        EdgeServer::start_on(crate::free_port(), origin_url, vars).await
    }

    /// Like [`EdgeServer::start_with`], on `port` (chosen with [`crate::free_port`] before the
    /// origin starts, when the origin must know the edge's URL).
    pub async fn start_on(port: u16, origin_url: &str, vars: &[(&str, &str)]) -> EdgeServer {
        let root = crate::repo_root();
        assert!(
            root.join("edge/build/index.js").exists(),
            "the edge worker is not built: run scripts/build-edge.sh (scripts/test.sh does)"
        );
        let state =
            std::env::temp_dir().join(format!("movierec-edge-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&state).expect("wrangler state folder");
        let log = state.join("wrangler.log");
        let child = Command::new(root.join("node_modules/.bin/wrangler"))
            .current_dir(&root)
            .args([
                "dev",
                "--config",
                "wrangler.toml",
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--persist-to")
            .arg(&state)
            .args(["--var", &format!("ORIGIN_URL:{origin_url}")])
            .args(["--var", &format!("PURGE_SECRET:{PURGE_SECRET}")])
            .args(["--var", "ORIGIN_TIMEOUT_MS:1500"])
            .args(
                vars.iter()
                    .flat_map(|(name, value)| ["--var".to_owned(), format!("{name}:{value}")]),
            )
            // Each instance its own inspector port: parallel tests must not collide on 9229.
            .args(["--inspector-port", &crate::free_port().to_string()])
            .envs([
                ("WRANGLER_SEND_METRICS", "false"),
                ("WRANGLER_SEND_ERROR_REPORTS", "false"),
                ("WRANGLER_HIDE_BANNER", "true"),
                ("CLOUDFLARE_CF_FETCH_ENABLED", "false"),
                ("NO_COLOR", "1"),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("wrangler log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("wrangler log"))
            .process_group(0)
            .spawn()
            .expect("start wrangler dev (npm ci ran? scripts/edge-toolchain.sh)");
        let server = EdgeServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _state: tempdir::TempDir(state),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // A path the worker answers itself (405 for GET), so readiness touches no cache.
            if client
                .get(format!("{}/__edge/purge", server.url))
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            if Instant::now() >= deadline {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
                panic!("wrangler dev did not start within 60 s:\n{out}\n{err}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl EdgeServer {
    /// The worker's counters, `GET /__edge/stats` with the secret (`shared::edge_stats`).
    pub async fn stats(&self) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(format!("{}/__edge/stats", self.url))
            .bearer_auth(PURGE_SECRET)
            .send()
            .await
            .expect("the edge's stats");
        assert_eq!(response.status(), 200, "GET /__edge/stats");
        response.json().await.expect("the stats are JSON")
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["--", &format!("-{pgid}")])
            .status();
        let _ = self.child.wait();
    }
}

/// How a scripted route answers.
#[derive(Debug, Clone)]
pub struct FakeRoute {
    /// Status code.
    pub status: u16,
    /// `Cache-Control`.
    pub cache_control: String,
    /// Whether to send a `Set-Cookie`.
    pub set_cookie: bool,
}

/// A request the scripted origin received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Path and query.
    pub path: String,
    /// `If-None-Match`, if sent.
    pub if_none_match: Option<String>,
    /// `x-request-id`, if sent.
    pub request_id: Option<String>,
}

/// The value of the header field `name` in an HTTP/1.1 request head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field
            .trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

struct FakeState {
    routes: Mutex<HashMap<String, FakeRoute>>,
    seen: Mutex<Vec<Seen>>,
    version: AtomicU32,
    hang: AtomicBool,
    /// `true` while answers are held back ([`FakeOrigin::hold`]).
    gate: tokio::sync::watch::Sender<bool>,
}

/// A scripted HTTP/1.1 origin on loopback (`Connection: close`). Bodies are
/// `{"path": ..., "version": N}` with `ETag: "vN"`; a matching `If-None-Match` gets a 304.
/// Like the real origin, it echoes the `x-request-id` it received.
pub struct FakeOrigin {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOrigin {
    /// Starts it; every unknown path answers 404.
    pub async fn start() -> FakeOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(FakeState {
            routes: Mutex::default(),
            seen: Mutex::default(),
            version: AtomicU32::new(1),
            hang: AtomicBool::new(false),
            gate: tokio::sync::watch::channel(false).0,
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buffer).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let inm = header(&head, "if-none-match");
                    let request_id = header(&head, "x-request-id");
                    state.seen.lock().unwrap().push(Seen {
                        path: path.clone(),
                        if_none_match: inm.clone(),
                        request_id: request_id.clone(),
                    });
                    if state.hang.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let mut gate = state.gate.subscribe();
                    let _ = gate.wait_for(|held| !held).await;
                    let route = state.routes.lock().unwrap().get(&path).cloned();
                    let version = state.version.load(Ordering::SeqCst);
                    let etag = format!("\"v{version}\"");
                    let echo = request_id
                        .map(|id| format!("X-Request-Id: {id}\r\n"))
                        .unwrap_or_default();
                    let response = match route {
                        None => format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n{echo}Connection: close\r\n\r\n"
                        ),
                        Some(route)
                            if route.status == 200 && inm.as_deref() == Some(etag.as_str()) =>
                        {
                            format!(
                                "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nCache-Control: {}\r\nCache-Status: origin; hit\r\n{echo}Connection: close\r\n\r\n",
                                route.cache_control
                            )
                        }
                        Some(route) => {
                            let body = format!("{{\"path\":\"{path}\",\"version\":{version}}}");
                            let cookie = if route.set_cookie {
                                "Set-Cookie: session=abc\r\n"
                            } else {
                                ""
                            };
                            format!(
                                "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nETag: {etag}\r\nCache-Control: {}\r\n{cookie}Cache-Status: origin; fwd=miss; stored\r\n{echo}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                route.status,
                                route.cache_control,
                                body.len()
                            )
                        }
                    };
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FakeOrigin { url, state, task }
    }

    /// Scripts `path`.
    pub fn route(&self, path: &str, status: u16, cache_control: &str, set_cookie: bool) {
        self.state.routes.lock().unwrap().insert(
            path.to_owned(),
            FakeRoute {
                status,
                cache_control: cache_control.to_owned(),
                set_cookie,
            },
        );
    }

    /// Changes every body (and ETag) to version `v`.
    pub fn set_version(&self, v: u32) {
        self.state.version.store(v, Ordering::SeqCst);
    }

    /// Hold every answer back (requests are still received and seen) until
    /// [`FakeOrigin::release`].
    pub fn hold(&self) {
        self.state.gate.send_replace(true);
    }

    /// Send the answers held back, and answer at once from now on.
    pub fn release(&self) {
        self.state.gate.send_replace(false);
    }

    /// Accept connections but never answer.
    pub fn hang(&self) {
        self.state.hang.store(true, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Stops listening: further connections are refused.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for FakeOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
