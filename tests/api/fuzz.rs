//! A seeded request fuzzer: a few thousand random requests (methods, paths built from the
//! API's segments and junk, query strings, headers, bodies) sent to the origin and through the
//! edge. Every answer must be below 500, carry an `x-request-id`, and every 4xx with a body
//! must be the JSON error shape; afterwards the ratings table may differ only by the writes the
//! origin acknowledged with a 2xx. The seed is fixed and printed on failure; `FUZZ_SEED=N`
//! replays another one.

use futures::StreamExt;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::HashMap;
use tests::TestApp;
use tests::edge::{EdgeServer, PURGE_SECRET};

const SEED: u64 = 0x5eed_2026;
const IN_FLIGHT: usize = 16;
const USERS: i32 = 943;
const MOVIES: i64 = 1682;

/// The seed: `FUZZ_SEED` when set, else [`SEED`].
fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

/// One generated request, with what the generator knows about it.
#[derive(Debug)]
struct Fuzzed {
    method: Method,
    /// Path and query.
    path: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Option<Vec<u8>>,
    /// The generator is sure this request cannot write a rating (no or a wrong token, a body
    /// that is not a valid rating, ...): a 2xx to it is a defect.
    cannot_write: bool,
}

impl Fuzzed {
    /// How a failure report shows the request (bodies cut short).
    fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let body = self.body.as_ref().map(|b| {
            let text = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            format!("{} bytes: {text:?}", b.len())
        });
        let path = if self.path.len() > 300 {
            let chars: Vec<char> = self.path.chars().collect();
            let head: String = chars[..120].iter().collect();
            let tail: String = chars[chars.len().saturating_sub(120)..].iter().collect();
            format!("{head}...({} bytes)...{tail}", self.path.len())
        } else {
            self.path.clone()
        };
        format!("{} {path} headers={headers:?} body={body:?}", self.method)
    }
}

/// The tokens a request may carry.
struct Tokens<'a> {
    app: &'a TestApp,
    admin: String,
    foreign: String,
}

impl Tokens<'_> {
    fn new(app: &TestApp) -> Tokens<'_> {
        let foreign =
            origin::auth::Tokens::new(&secrecy::SecretString::from("another-secret".to_owned()))
                .unwrap()
                .mint(
                    origin::auth::Caller::User(shared::params::UserId(1)),
                    std::time::Duration::from_secs(600),
                )
                .expect("token");
        Tokens {
            app,
            admin: app.admin_token(),
            foreign,
        }
    }
}

fn junk_text(rng: &mut impl Rng, max: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "0",
        "9",
        "-",
        "_",
        ".",
        "~",
        "%",
        "%00",
        "%2F",
        "%25",
        "%ZZ",
        "%e2%82%ac",
        "é",
        "日本",
        "🎬",
        "\u{202e}",
        "'",
        "\"",
        "<",
        ">",
        "{",
        "}",
        "[",
        "]",
        ";",
        "=",
        "&",
        "+",
        ",",
        ":",
        "@",
        "!",
        "$",
        "*",
        "(",
        ")",
        " ",
        "..",
        "\\",
        "|",
        "^",
        "`",
    ];
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| *PIECES.choose(rng).expect("pieces"))
        .collect()
}

/// A header value: printable ASCII and obs-text bytes (no control characters).
fn junk_header(rng: &mut impl Rng) -> HeaderValue {
    let len = rng.random_range(0..=80);
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            if rng.random_bool(0.1) {
                rng.random_range(0x80..=0xff)
            } else {
                rng.random_range(0x20..0x7f)
            }
        })
        .collect();
    HeaderValue::from_bytes(&bytes).expect("no control characters")
}

/// A user id segment: usually a real user, sometimes junk. `Some(id)` when it is a plain id.
fn user_segment(rng: &mut impl Rng) -> (String, Option<i32>) {
    match rng.random_range(0..10) {
        0..=6 => {
            let id = rng.random_range(1..=USERS);
            (id.to_string(), Some(id))
        }
        7 => (
            [
                "0",
                "-1",
                "99999",
                "2147483648",
                "1.5",
                "abc",
                "%31",
                "+1",
                "01",
            ]
            .choose(rng)
            .expect("ids")
            .to_string(),
            None,
        ),
        8 => ("9".repeat(rng.random_range(20..3000)), None),
        _ => (junk_text(rng, 12), None),
    }
}

fn movie_segment(rng: &mut impl Rng) -> String {
    match rng.random_range(0..10) {
        0..=5 => rng.random_range(1..=MOVIES + 20).to_string(),
        6 => ["0", "-3", "1.5", "1e3", "0x10", "%31", "popular", "similar"]
            .choose(rng)
            .expect("ids")
            .to_string(),
        7 => "1".repeat(rng.random_range(20..5000)),
        _ => junk_text(rng, 12),
    }
}

fn genre_segment(rng: &mut impl Rng) -> String {
    if rng.random_bool(0.7) {
        [
            "drama",
            "Comedy",
            "sci-fi",
            "Sci-Fi",
            "film-noir",
            "childrens",
            "unknown",
            "polka",
            "SCI%2DFI",
        ]
        .choose(rng)
        .expect("genres")
        .to_string()
    } else {
        junk_text(rng, 16)
    }
}

/// A path (without the query) and, for a ratings path with a plain id, that user.
fn path(rng: &mut impl Rng) -> (String, Option<i32>) {
    let (user, user_id) = user_segment(rng);
    match rng.random_range(0..20) {
        0..=1 => (format!("/movies/{}", movie_segment(rng)), None),
        2 => (format!("/movies/{}/similar", movie_segment(rng)), None),
        3 => ("/movies/popular".into(), None),
        4 => ("/genres".into(), None),
        5 => (format!("/genres/{}/top", genre_segment(rng)), None),
        6 => (format!("/users/{user}/profile"), None),
        7..=8 => (format!("/users/{user}/recommendations"), None),
        9..=12 => (format!("/users/{user}/ratings"), user_id),
        13 => (
            [
                "/admin/cache/stats",
                "/admin/cache/warm",
                "/admin/views/refresh",
                "/admin/model/reload",
                "/admin/dashboard",
                "/admin",
                "/admin/",
                "/admin/nothing",
            ]
            .choose(rng)
            .expect("admin paths")
            .to_string(),
            None,
        ),
        14 => ("/__edge/purge".into(), None),
        15 => (
            ["/health", "/ready", "/metrics", "/openapi.json", "/", "//"]
                .choose(rng)
                .expect("paths")
                .to_string(),
            None,
        ),
        16 => {
            let segments = rng.random_range(1..5);
            let mut path = String::new();
            for _ in 0..segments {
                path.push('/');
                path.push_str(&junk_text(rng, 10));
            }
            (path, None)
        }
        17 => (
            format!("/movies/{}/{}", movie_segment(rng), junk_text(rng, 6)),
            None,
        ),
        18 => (format!("/users/{user}/{}", junk_text(rng, 8)), None),
        _ => (format!("/users/{user}/ratings/{}", junk_text(rng, 4)), None),
    }
}

fn query(rng: &mut impl Rng) -> String {
    if rng.random_bool(0.4) {
        return String::new();
    }
    let count = rng.random_range(1..5);
    let mut pairs = Vec::new();
    for _ in 0..count {
        let value = match rng.random_range(0..6) {
            0..=1 => rng.random_range(-5..130).to_string(),
            2 => ["collaborative", "popular", "genre", "hybrid", "HYBRID", ""]
                .choose(rng)
                .expect("strategies")
                .to_string(),
            3 => (0..rng.random_range(0..150))
                .map(|_| rng.random_range(-2..2000).to_string())
                .collect::<Vec<_>>()
                .join(","),
            4 => "9".repeat(rng.random_range(1..400)),
            _ => junk_text(rng, 12),
        };
        let name = [
            "limit", "n", "strategy", "exclude", "genre", "limit", "x", "",
        ]
        .choose(rng)
        .expect("names")
        .to_string();
        let name = if rng.random_bool(0.1) {
            junk_text(rng, 6)
        } else {
            name
        };
        pairs.push(if rng.random_bool(0.1) {
            name
        } else {
            format!("{name}={value}")
        });
    }
    format!("?{}", pairs.join("&"))
}

/// Random JSON, at most `depth` levels deep.
fn random_json(rng: &mut impl Rng, depth: u32) -> Value {
    match rng.random_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random_range(-1e12..1e12)),
        3 => json!(rng.random_range(i64::MIN..i64::MAX)),
        4 => json!(junk_text(rng, 10)),
        5 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = ["movie_id", "rating", "paths", "extra", "user_id", ""];
            Value::Object(
                (0..rng.random_range(0..4))
                    .map(|_| {
                        (
                            keys.choose(rng).expect("keys").to_string(),
                            random_json(rng, depth - 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// A valid rating body: a real movie, 0.5 to 5.0 in steps of 0.5.
fn valid_rating(rng: &mut impl Rng) -> Vec<u8> {
    let movie = rng.random_range(1..=MOVIES);
    let rating = f64::from(rng.random_range(1..=10)) / 2.0;
    json!({"movie_id": movie, "rating": rating})
        .to_string()
        .into_bytes()
}

/// A body, and whether it is a valid rating.
fn body(rng: &mut impl Rng) -> (Option<Vec<u8>>, bool) {
    match rng.random_range(0..12) {
        0..=2 => (None, false),
        3..=6 => (Some(valid_rating(rng)), true),
        7 => {
            let body = [
                json!({"movie_id": 1, "rating": 4.3}),
                json!({"movie_id": 0, "rating": 4}),
                json!({"movie_id": 99999, "rating": 4}),
                json!({"movie_id": 1}),
                json!({"movie_id": "1", "rating": 4}),
                json!({"movie_id": 1, "rating": 4, "extra": 1}),
                json!({"movie_id": 1.5, "rating": 4}),
                json!({"movie_id": 1, "rating": 1e308}),
                json!({"paths": ["/movies/1", "/genres/drama/top?limit=5"]}),
                json!([]),
            ]
            .choose(rng)
            .expect("bodies")
            .clone();
            (Some(body.to_string().into_bytes()), false)
        }
        8..=9 => (Some(random_json(rng, 3).to_string().into_bytes()), false),
        10 => {
            let len = rng.random_range(0..300);
            (Some((0..len).map(|_| rng.random()).collect()), false)
        }
        _ => {
            let len = origin::http::MAX_BODY_BYTES + rng.random_range(1..20_000);
            let pad = "x".repeat(len);
            let body = format!(r#"{{"movie_id": 1, "rating": 2, "pad": "{pad}"}}"#);
            (Some(body.into_bytes()), false)
        }
    }
}

fn generate(rng: &mut impl Rng, tokens: &Tokens<'_>) -> Fuzzed {
    let method = match rng.random_range(0..20) {
        0..=6 => Method::GET,
        7..=11 => Method::POST,
        12..=13 => Method::HEAD,
        14..=15 => Method::OPTIONS,
        16..=17 => Method::PUT,
        _ => Method::DELETE,
    };
    let (path, ratings_user) = path(rng);
    let path = format!("{path}{}", query(rng));
    let mut headers: Vec<(&'static str, HeaderValue)> = Vec::new();
    let header = |v: String| HeaderValue::from_str(&v).expect("header value");

    // Authorization: the path's own user, another user, the admin, a foreign or garbage token.
    // `authorized`: the token might allow writing this path's ratings (a junk id such as
    // `01` may still name a user).
    let mut authorized = false;
    match rng.random_range(0..8) {
        0..=2 => {
            let user = ratings_user.unwrap_or_else(|| rng.random_range(1..=USERS));
            authorized = true;
            headers.push((
                "authorization",
                header(format!("Bearer {}", tokens.app.user_token(user))),
            ));
        }
        3 => {
            let other = rng.random_range(1..=USERS);
            authorized = ratings_user.is_none_or(|user| user == other);
            headers.push((
                "authorization",
                header(format!("Bearer {}", tokens.app.user_token(other))),
            ));
        }
        4 => {
            authorized = true;
            headers.push(("authorization", header(format!("Bearer {}", tokens.admin))));
        }
        5 => {
            let garbage = match rng.random_range(0..5) {
                0 => format!("Bearer {}", tokens.foreign),
                1 => format!("Bearer {PURGE_SECRET}"),
                2 => "Basic dXNlcjpwdw==".to_owned(),
                3 => "Bearer ".to_owned(),
                _ => String::from_utf8_lossy(junk_header(rng).as_bytes()).into_owned(),
            };
            if let Ok(value) = HeaderValue::from_str(&garbage) {
                headers.push(("authorization", value));
            }
        }
        _ => {}
    }
    if rng.random_bool(0.2) {
        let value = match rng.random_range(0..3) {
            0 => junk_header(rng),
            1 => header("\"0000\"".into()),
            _ => header("*".into()),
        };
        headers.push(("if-none-match", value));
    }
    if rng.random_bool(0.3) {
        let value = match rng.random_range(0..3) {
            0 => header("http://localhost:5173".into()),
            1 => header("https://evil.example".into()),
            _ => junk_header(rng),
        };
        headers.push(("origin", value));
        if method == Method::OPTIONS && rng.random_bool(0.7) {
            let requested = ["GET", "POST", "DELETE", "PATCH", "get", "junk value"]
                .choose(rng)
                .expect("methods");
            headers.push((
                "access-control-request-method",
                header((*requested).to_owned()),
            ));
            if rng.random_bool(0.5) {
                headers.push((
                    "access-control-request-headers",
                    header("authorization, content-type, x-evil".into()),
                ));
            }
        }
    }
    if rng.random_bool(0.2) {
        let value = match rng.random_range(0..3) {
            0 => junk_header(rng),
            1 => header("a".repeat(rng.random_range(100..2000))),
            _ => header(uuid::Uuid::new_v4().to_string()),
        };
        headers.push(("x-request-id", value));
    }
    // Half the POSTs to a user's ratings are well-formed writes, so some get through.
    let aim_write = method == Method::POST && ratings_user.is_some() && rng.random_bool(0.5);
    let mut json_type = false;
    if aim_write {
        json_type = true;
        headers.push(("content-type", header("application/json".into())));
    } else if rng.random_bool(0.7) {
        let content_type = [
            "application/json",
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ]
        .choose(rng)
        .expect("content types");
        json_type = content_type.eq_ignore_ascii_case("application/json")
            || content_type.starts_with("application/json;");
        headers.push(("content-type", header((*content_type).to_owned())));
    }
    let (body, valid_rating) = if aim_write {
        (Some(valid_rating(rng)), true)
    } else {
        body(rng)
    };
    let could_write = method == Method::POST && authorized && json_type && valid_rating;
    Fuzzed {
        method,
        path,
        headers,
        body,
        cannot_write: !could_write,
    }
}

/// A 2xx answer to `POST /users/{id}/ratings`: the receipt.
#[derive(Debug, serde::Deserialize)]
struct Receipt {
    user_id: i32,
    movie_id: i32,
    rating: f64,
}

/// What a request taught: a failure, or an acknowledged write.
enum Outcome {
    Fine(u16),
    Wrote(Receipt),
    Failed(String),
}

async fn send(client: &reqwest::Client, base: &str, request: Fuzzed) -> Outcome {
    let mut builder = client.request(request.method.clone(), format!("{base}{}", request.path));
    for (name, value) in &request.headers {
        builder = builder.header(HeaderName::from_static(name), value.clone());
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(err) => return Outcome::Failed(format!("{}: no answer: {err}", request.describe())),
    };
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| !v.as_bytes().is_empty())
        .unwrap_or(false);
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => {
            return Outcome::Failed(format!(
                "{}: {status}, then the body could not be read: {err:?}",
                request.describe()
            ));
        }
    };
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let fail = |why: &str| {
        Outcome::Failed(format!(
            "{}\n    -> {status} {why} (content-type {content_type:?}): {shown:?}",
            request.describe()
        ))
    };
    if status >= 500 {
        return fail("server error");
    }
    if !request_id {
        return fail("no x-request-id");
    }
    if status >= 400 && request.method != Method::HEAD {
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        if code.is_none_or(|c| c.is_empty()) {
            return fail("not a JSON error body");
        }
    }
    let is_rating_post = request.method == Method::POST
        && request.path.starts_with("/users/")
        && request
            .path
            .split('?')
            .next()
            .is_some_and(|p| p.ends_with("/ratings"));
    if (200..300).contains(&status) && is_rating_post {
        if request.cannot_write {
            return fail("a write the generator considered invalid was accepted");
        }
        return match serde_json::from_slice::<Receipt>(&body) {
            Ok(receipt) => Outcome::Wrote(receipt),
            Err(err) => fail(&format!("2xx rating without a receipt: {err}")),
        };
    }
    Outcome::Fine(status)
}

type Ratings = HashMap<(i32, i32), f64>;

async fn ratings(app: &TestApp) -> Ratings {
    let rows: Vec<(i32, i32, f64)> =
        sqlx::query_as("SELECT user_id, movie_id, rating::float8 FROM ratings")
            .fetch_all(app.db())
            .await
            .expect("ratings");
    rows.into_iter().map(|(u, m, r)| ((u, m), r)).collect()
}

/// Sends `count` fuzzed requests to `base` (the origin's or the edge's URL) and checks every
/// answer, then the ratings table.
async fn fuzz(app: &TestApp, base: &str, count: usize, seed: u64) {
    let before = ratings(app).await;
    let before_snapshot = app.ratings_snapshot().await;
    let tokens = Tokens::new(app);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let requests: Vec<Fuzzed> = (0..count).map(|_| generate(&mut rng, &tokens)).collect();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let outcomes: Vec<Outcome> = futures::stream::iter(requests)
        .map(|request| send(&client, base, request))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let mut failures = Vec::new();
    let mut written: HashMap<(i32, i32), Vec<f64>> = HashMap::new();
    let mut writes = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Fine(status) => *statuses.entry(status).or_insert(0) += 1,
            Outcome::Wrote(receipt) => {
                writes += 1;
                *statuses.entry(0).or_insert(0) += 1;
                written
                    .entry((receipt.user_id, receipt.movie_id))
                    .or_default()
                    .push(receipt.rating);
            }
            Outcome::Failed(why) => failures.push(why),
        }
    }

    let after = ratings(app).await;
    let after_snapshot = app.ratings_snapshot().await;
    if writes == 0 && before_snapshot != after_snapshot {
        failures.push(format!(
            "no write was acknowledged, yet the ratings changed: {before_snapshot:?} -> {after_snapshot:?}"
        ));
    }
    for (pair, rating) in &after {
        let acknowledged = written.get(pair);
        let unchanged = before.get(pair) == Some(rating);
        if !unchanged && !acknowledged.is_some_and(|r| r.contains(rating)) {
            failures.push(format!(
                "rating {pair:?} = {rating} (was {:?}) not acknowledged: {acknowledged:?}",
                before.get(pair)
            ));
        }
    }
    for (pair, ratings) in &written {
        match after.get(pair) {
            Some(rating) if ratings.contains(rating) => {}
            other => failures.push(format!(
                "acknowledged rating {pair:?} in {ratings:?} is {other:?} in the table"
            )),
        }
    }
    if let Some(pair) = before.keys().find(|pair| !after.contains_key(pair)) {
        failures.push(format!("rating {pair:?} disappeared"));
    }
    // The counters beside the table move with it.
    let rows = after_snapshot.0 - before_snapshot.0;
    if after_snapshot.3 - before_snapshot.3 != rows || after_snapshot.4 - before_snapshot.4 != rows
    {
        failures.push(format!(
            "counters disagree with the table: {before_snapshot:?} -> {after_snapshot:?}"
        ));
    }

    println!(
        "fuzzed {count} requests at {base} (seed {seed}): {writes} acknowledged writes, {} failures; \
         statuses (0 = rating written) {statuses:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed} (replay with FUZZ_SEED={seed}): {} failures, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn fuzzed_requests_to_the_origin() {
    let app = TestApp::spawn().await;
    fuzz(&app, &app.url(""), 2000, seed()).await;
}

#[tokio::test]
async fn fuzzed_requests_through_the_edge() {
    let app = TestApp::spawn().await;
    // With the origin's secret: the edge checks tokens and keeps personal reads itself.
    let edge = EdgeServer::start_with(&app.url(""), &[("JWT_SECRET", &app.jwt_secret())]).await;
    fuzz(&app, &edge.url, 500, seed().wrapping_add(1)).await;
}
