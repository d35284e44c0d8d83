//! Request tracing: `x-request-id` on every response, and the one log line per request that
//! the built `origin` binary writes (plain text and JSON, without colour codes in a pipe).

use serde_json::Value;
use shared::request_id::is_well_formed;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::{
    TestApp, cache_status, free_port, fresh_database, origin_binary, redis_mode, redis_url,
};

const HEADER: &str = "x-request-id";

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(HEADER)
        .unwrap_or_else(|| panic!("no {HEADER} on {} {}", response.status(), response.url()))
        .to_str()
        .expect("an ASCII request id")
        .to_owned()
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    // (path, expected status): a success, an unknown movie, an unknown route, no token.
    let cases = [
        ("/movies/1", 200),
        ("/movies/999999", 404),
        ("/no/such/route", 404),
        ("/users/1/profile", 401),
    ];
    for (path, status) in cases {
        let send = |id: Option<&str>| {
            let mut request = app.client.get(app.url(path));
            if let Some(id) = id {
                request = request.header(HEADER, id);
            }
            request.send()
        };

        // A well-formed id comes back as it was sent.
        for id in [
            "3f2a9c1e-5b7d-4e0a-9f11-0c2d4e6f8a9b",
            "client.trace:42/x+y=",
        ] {
            let response = send(Some(id)).await.expect("request");
            assert_eq!(response.status(), status, "{path}");
            assert_eq!(request_id(&response), id, "{path}");
        }

        // A malformed one (a space, too long, a character outside the set) is replaced.
        let long = "x".repeat(200);
        for bad in ["has a space", long.as_str(), "semi;colon"] {
            let response = send(Some(bad)).await.expect("request");
            assert_eq!(response.status(), status, "{path}");
            let id = request_id(&response);
            assert_ne!(id, bad, "{path}: a malformed id is not echoed");
            assert!(is_well_formed(&id), "{path}: {id:?}");
        }

        // None: a fresh one, different for each request.
        let first = send(None).await.expect("request");
        let second = send(None).await.expect("request");
        assert_eq!(first.status(), status, "{path}");
        let (first, second) = (request_id(&first), request_id(&second));
        assert!(is_well_formed(&first), "{path}: {first:?}");
        assert!(is_well_formed(&second), "{path}: {second:?}");
        assert_ne!(first, second, "{path}: fresh ids are unique");
    }
}

/// A running `origin serve` whose output goes to pipes; killed when dropped (a failing test
/// included).
struct OriginProcess {
    child: Child,
    url: String,
    output: Vec<std::thread::JoinHandle<Vec<u8>>>,
}

impl OriginProcess {
    /// Starts the built binary with `LOG_FORMAT=log_format` against a fresh database and waits
    /// until it answers `/health`.
    async fn start(database_url: &str, log_format: &str) -> OriginProcess {
        let port = free_port();
        let mode = redis_mode();
        let mut command = Command::new(origin_binary());
        command
            .arg("serve")
            .env("ORIGIN_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env(
                "REDIS_MODE",
                match mode {
                    origin::settings::RedisMode::Single => "single",
                    origin::settings::RedisMode::Cluster => "cluster",
                },
            )
            .env("REDIS_URL", redis_url(mode))
            .env(
                "CACHE_NAMESPACE",
                format!("trace{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            )
            .env("JWT_SECRET", uuid::Uuid::new_v4().to_string())
            .env("WARM_ON_START", "false")
            .env("LOG_FORMAT", log_format)
            // The defaults are under test: no filter or colour settings from outside.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start target/debug/origin serve");
        // Drained as it comes, so a full pipe never blocks the server.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let output = vec![
            drain(Box::new(child.stdout.take().expect("stdout"))),
            drain(Box::new(child.stderr.take().expect("stderr"))),
        ];
        let mut process = OriginProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            output,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = process.child.try_wait().expect("child status") {
                let (stdout, stderr) = process.stop();
                panic!(
                    "origin exited with {status}:\n{}\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            let health = client.get(format!("{}/health", process.url)).send().await;
            if health.is_ok_and(|r| r.status() == 200) {
                return process;
            }
            assert!(Instant::now() < deadline, "origin did not answer in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills it and returns everything it wrote: stdout, stderr.
    fn stop(&mut self) -> (Vec<u8>, Vec<u8>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut output = self
            .output
            .drain(..)
            .map(|reader| reader.join().expect("pipe reader"));
        (
            output.next().unwrap_or_default(),
            output.next().unwrap_or_default(),
        )
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request with a known id against the binary; returns its `Cache-Status` and the
/// process's stdout and stderr.
async fn one_request(log_format: &str, id: &str) -> (String, Vec<u8>, Vec<u8>) {
    let database = fresh_database().await;
    let mut origin = OriginProcess::start(&database, log_format).await;
    let response = reqwest::Client::new()
        .get(format!("{}/movies/1", origin.url))
        .header(HEADER, id)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(request_id(&response), id);
    let cache = cache_status(&response);
    assert!(!cache.is_empty(), "a Cache-Status");
    let (stdout, stderr) = origin.stop();
    (cache, stdout, stderr)
}

fn assert_no_colour(stdout: &[u8], stderr: &[u8]) {
    for (name, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        assert!(
            !bytes.contains(&0x1b),
            "ESC in the {name} of a piped origin:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[tokio::test]
async fn the_binary_logs_one_json_line_per_request() {
    let id = format!("json-{}", uuid::Uuid::new_v4());
    let (cache, stdout, stderr) = one_request("json", &id).await;
    assert_no_colour(&stdout, &stderr);
    let text = String::from_utf8(stderr).expect("UTF-8 logs");
    let lines: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    let mine: Vec<&Value> = lines
        .iter()
        .filter(|line| line.to_string().contains(&id))
        .collect();
    assert_eq!(mine.len(), 1, "one line for the request:\n{text}");
    let line = mine[0];
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["request_id"], id.as_str(), "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["route"], "/movies/{id}", "{line}");
    assert_eq!(line["target"], "origin::access", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["cache_status"], cache.as_str(), "{line}");
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
}

#[tokio::test]
async fn the_binary_logs_plain_text_without_colour_into_a_pipe() {
    let id = format!("text-{}", uuid::Uuid::new_v4());
    let (cache, stdout, stderr) = one_request("text", &id).await;
    assert_no_colour(&stdout, &stderr);
    let text = String::from_utf8(stderr).expect("UTF-8 logs");
    let mine: Vec<&str> = text.lines().filter(|line| line.contains(&id)).collect();
    assert_eq!(mine.len(), 1, "one line for the request:\n{text}");
    let line = mine[0];
    for part in [
        "INFO",
        "method=GET",
        "route=\"/movies/{id}\"",
        "status=200",
        "latency_ms=",
        &format!("cache_status=\"{cache}\""),
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}
