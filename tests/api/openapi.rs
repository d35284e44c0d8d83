//! The OpenAPI document (`GET /openapi.json`) against the code, so that it cannot drift:
//! - it is OpenAPI 3.1 (utoipa's model of 3.1 reads it back; every `$ref` resolves; every path
//!   template's parameter is declared), and it documents every route of the router: each
//!   `.route("...", method(...))` in `origin/src/routes/` and `origin/src/openapi.rs`, and each
//!   route a request below was matched to (the router reports its `MatchedPath`);
//! - real responses of every route (successes, each error shape, 304s, 405s, unknown routes,
//!   and 503s from a private PostgreSQL and Redis that are stopped) are validated: the status
//!   is documented for the operation, the body matches the documented schema (JSON Schema
//!   2020-12 with `jsonschema`; properties the schema does not name are refused, so a field
//!   added to a response without its schema fails), the documented headers are sent;
//! - the documented bounds and enums of the parameters are probed: the edges and each member
//!   are accepted, one past an edge and a non-member are a 400;
//! - every documented status of every operation (but the opaque 500) was seen.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use origin::settings::RedisMode;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use tests::{PrivateServer, TestApp, repo_root, test_settings};

/// The response header the probing router adds: the route axum matched the request to.
const ROUTE_HEADER: &str = "x-test-matched-route";
/// An operation's methods as the document names them.
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];
/// Documented statuses of which one binary answers only one: the dashboard's script and style
/// are there once the bundle is built into the binary (`scripts/build-dashboard.sh`), a 404
/// before.
const EITHER: [(&str, &str, [&str; 2]); 2] = [
    ("GET", "/admin/dashboard/dashboard.js", ["200", "404"]),
    ("GET", "/admin/dashboard/dashboard.css", ["200", "404"]),
];

/// The document, and what the requests of the test saw of it.
struct Contract {
    document: Value,
    /// `components.schemas`, strict: every object schema with `properties` refuses others.
    schemas: Value,
    validators: Mutex<HashMap<String, jsonschema::Validator>>,
    /// `(METHOD, path template, status)` of every checked response.
    seen: Mutex<BTreeSet<(String, String, String)>>,
}

impl Contract {
    fn new(document: Value) -> Contract {
        let schemas = strict(document["components"]["schemas"].clone());
        Contract {
            document,
            schemas,
            validators: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// The value a local `$ref` (`#/components/...`) points at.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local references: {reference}"));
                self.document
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} does not resolve"))
            }
            None => value,
        }
    }

    /// Every operation: `(method, path template, operation)`.
    fn operations(&self) -> Vec<(&str, &str, &Value)> {
        let paths = self.document["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter_map(move |m| item.get(*m).map(|op| (*m, path.as_str(), op)))
            })
            .collect()
    }

    /// The documented path template a concrete path fits (`/movies/1` → `/movies/{id}`).
    fn template_of(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.document["paths"]
            .as_object()?
            .keys()
            .find(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts.iter().zip(&segments).all(|(t, s)| {
                        (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                    })
            })
            .cloned()
    }

    /// A validator of `schema` (a value of the document), compiled once.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        let mut validators = self.validators.lock().unwrap();
        let validator = validators.entry(key).or_insert_with(|| {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": { "schemas": self.schemas },
                "allOf": [strict(schema.clone())],
            });
            jsonschema::draft202012::new(&root)
                .unwrap_or_else(|err| panic!("schema {schema} compiles: {err}"))
        });
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|err| format!("at `{}`: {err}", err.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Checks one real response against the document and notes it as seen.
    fn check(
        &self,
        method: &Method,
        url_path: &str,
        route: Option<&str>,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let method = method.as_str().to_ascii_lowercase();
        let Some(route) = route else {
            // No route matched: the JSON 404 of the fallback, for a path the document does not
            // have either.
            if let Some(template) = self.template_of(url_path) {
                return Err(format!(
                    "{url_path} is documented as {template} but no route matched"
                ));
            }
            if status != 404 {
                return Err(format!("an unmatched path answered {status}, not 404"));
            }
            self.check_error_body(body)?;
            self.note("*", "(unmatched)", status);
            return Ok(());
        };
        // axum's catch-all `{*rest}` is OpenAPI's `{rest}`.
        let template = route.replace("{*", "{");
        let Some(item) = self.document["paths"].get(&template) else {
            return Err(format!(
                "the router serves {template} but the document has no such path: \
                 annotate its handler and list it in `routes::Operations`"
            ));
        };
        let Some(operation) = item.get(&method) else {
            // A documented path with another method: the JSON 405.
            if status != 405 {
                return Err(format!(
                    "the router serves {} {template} but the document does not",
                    method.to_uppercase()
                ));
            }
            self.check_error_body(body)?;
            self.note("*", &template, status);
            return Ok(());
        };
        let code = status.to_string();
        let Some(response) = operation["responses"].get(&code) else {
            return Err(format!(
                "{status} is not documented for {} {template}",
                method.to_uppercase()
            ));
        };
        let response = self.resolve(response);
        for name in response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            if !headers.contains_key(name.as_str()) {
                return Err(format!("the documented header `{name}` is missing"));
            }
        }
        let content = response["content"].as_object().filter(|c| !c.is_empty());
        match content {
            None if body.is_empty() => {}
            None => {
                return Err(format!(
                    "a body where none is documented: {} bytes",
                    body.len()
                ));
            }
            Some(content) => {
                let sent = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(essence)
                    .ok_or("no Content-Type")?;
                let Some((_, media)) = content.iter().find(|(k, _)| essence(k) == sent) else {
                    return Err(format!(
                        "Content-Type {sent} is not documented ({:?})",
                        content.keys().collect::<Vec<_>>()
                    ));
                };
                if sent == "application/json" {
                    let value: Value = serde_json::from_slice(body)
                        .map_err(|err| format!("the body is not JSON: {err}"))?;
                    self.validate(&media["schema"], &value)?;
                } else if sent.starts_with("text/") {
                    std::str::from_utf8(body).map_err(|_| "a text body that is not UTF-8")?;
                }
            }
        }
        self.note(&method.to_uppercase(), &template, status);
        Ok(())
    }

    fn check_error_body(&self, body: &[u8]) -> Result<(), String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("not a JSON error: {err}"))?;
        self.validate(&json!({ "$ref": "#/components/schemas/ErrorBody" }), &value)
    }

    fn note(&self, method: &str, template: &str, status: u16) {
        self.seen.lock().unwrap().insert((
            method.to_owned(),
            template.to_owned(),
            status.to_string(),
        ));
    }

    /// OpenAPI 3.1, in a form utoipa's model of the specification reads back, with every
    /// reference resolving, every path parameter declared and unique operation ids.
    fn assert_is_openapi_3_1(&self) {
        let version = self.document["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3.1."), "openapi: {version}");
        serde_json::from_value::<utoipa::openapi::OpenApi>(self.document.clone())
            .expect("the document reads as an OpenAPI 3.1 object");
        let mut references = Vec::new();
        collect_references(&self.document, &mut references);
        for reference in references {
            self.resolve(&json!({ "$ref": reference }));
        }
        let mut ids = BTreeSet::new();
        for (method, path, operation) in self.operations() {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(ids.insert(id.to_owned()), "operationId {id} is unique");
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path" && p["required"] == true)
                .filter_map(|p| p["name"].as_str())
                .collect();
            let in_template: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_template, "path parameters of {method} {path}");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} documents its responses"
            );
        }
    }

    /// Every `.route("PATH", get(...).post(...))` of the origin's source is documented.
    fn assert_documents_the_routes_in_the_source(&self) {
        let documented: BTreeSet<(String, String)> = self
            .operations()
            .into_iter()
            .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
            .collect();
        let routes = routes_in_source();
        assert!(
            routes.len() >= 15,
            "the source's routes were read: {routes:?}"
        );
        let missing: Vec<_> = routes.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes of the source without an operation in the document: {missing:?}"
        );
    }

    /// Every documented status of every operation was seen in a real response, but the 500.
    fn assert_every_documented_response_was_seen(&self) {
        let seen = self.seen.lock().unwrap();
        let mut unseen = Vec::new();
        for (method, path, operation) in self.operations() {
            for status in operation["responses"].as_object().unwrap().keys() {
                let key = (method.to_uppercase(), path.to_owned(), status.clone());
                let excused = EITHER.iter().any(|(m, p, statuses)| {
                    (*m, *p) == (key.0.as_str(), path)
                        && statuses.contains(&status.as_str())
                        && statuses.iter().any(|s| {
                            seen.contains(&(key.0.clone(), path.to_owned(), (*s).to_owned()))
                        })
                });
                if status != "500" && !excused && !seen.contains(&key) {
                    unseen.push(format!("{} {path} {status}", key.0));
                }
            }
        }
        assert!(
            unseen.is_empty(),
            "documented responses no request of this test produced: {unseen:#?}"
        );
    }
}

/// `text/plain; version=0.0.4` → `text/plain`.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The schema with `unevaluatedProperties: false` on every object schema that names its
/// properties and says nothing of others: for validating responses, an unnamed property is a
/// drift. (The published document leaves them open: adding a field is compatible for clients.)
fn strict(mut schema: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let names_properties = map.get("properties").is_some_and(Value::is_object);
                if names_properties
                    && !map.contains_key("additionalProperties")
                    && !map.contains_key("unevaluatedProperties")
                {
                    map.insert("unevaluatedProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| collect_references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// `(method, path)` of every `.route("PATH", ...)` call in the origin's route modules: the
/// method routers named in its second argument (`get(h)`, `get(h).post(g)`, `axum::routing::post(h)`).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = repo_root().join("origin/src");
    let mut files: Vec<_> = std::fs::read_dir(src.join("routes"))
        .expect("origin/src/routes")
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.push(src.join("openapi.rs"));
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let call = &text[at + ".route(".len()..];
            let where_ = format!("{}: `{}`", file.display(), &call[..call.len().min(60)]);
            let path = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(path, _)| path)
                .unwrap_or_else(|| panic!("a route path that is not a literal, at {where_}"));
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("an unbalanced route call at {where_}"));
            let arguments = &call[..end];
            let mut found = false;
            for method in METHODS {
                let called = arguments
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| {
                        i == 0
                            || !arguments[..i]
                                .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    });
                if called {
                    routes.insert((method.to_owned(), path.replace("{*", "{")));
                    found = true;
                }
            }
            assert!(found, "no method router read at {where_}");
        }
    }
    routes
}

/// A concrete path of `template`: each path parameter a value known to exist, but `except`.
fn known_good(template: &str, except: Option<(&str, &str)>) -> String {
    template
        .split('/')
        .map(|segment| {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                return segment.to_owned();
            };
            match (except, name) {
                (Some((wanted, value)), _) if wanted == name => value.to_owned(),
                (_, "id") => "1".to_owned(),
                (_, "genre") => "drama".to_owned(),
                (_, other) => {
                    panic!("no known-good value of the path parameter `{other}`: add one")
                }
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Adds [`ROUTE_HEADER`] to every response of a matched route.
async fn report_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(value) = route.and_then(|r| HeaderValue::from_str(&r).ok()) {
        response.headers_mut().insert(ROUTE_HEADER, value);
    }
    response
}

/// The origin's router on the app's state, with [`report_route`] around it, on its own port.
struct Probe<'a> {
    app: &'a TestApp,
    contract: &'a Contract,
    base: String,
}

/// A checked response.
struct Answer {
    /// `METHOD url`.
    target: String,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn etag(&self) -> String {
        self.headers["etag"].to_str().unwrap().to_owned()
    }

    fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl<'a> Probe<'a> {
    async fn start(app: &'a TestApp, contract: &'a Contract) -> Probe<'a> {
        let router = origin::routes::router(app.state.clone())
            .layer(axum::middleware::from_fn(report_route));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Probe {
            app,
            contract,
            base: format!("http://{addr}"),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.app
            .client
            .request(method, format!("{}{path}", self.base))
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// Sends the request and checks its response against the document.
    async fn send(&self, request: RequestBuilder) -> Answer {
        let request = request.build().unwrap();
        let (method, url) = (request.method().clone(), request.url().clone());
        let response = self.app.client.execute(request).await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        let route = headers.get(ROUTE_HEADER).and_then(|v| v.to_str().ok());
        if let Err(problem) =
            self.contract
                .check(&method, url.path(), route, status, &headers, &body)
        {
            panic!(
                "{method} {url} → {status}: {problem}\n{}",
                String::from_utf8_lossy(&body)
            );
        }
        Answer {
            target: format!("{method} {url}"),
            status,
            headers,
            body,
        }
    }

    /// Sends the request, checks its response, and asserts its status.
    async fn expect(&self, request: RequestBuilder, status: u16) -> Answer {
        let answer = self.send(request).await;
        assert_eq!(
            answer.status,
            status,
            "{}: {}",
            answer.target,
            String::from_utf8_lossy(&answer.body)
        );
        answer
    }

    /// A 200, then a 304 when its ETag is sent back.
    async fn cached(&self, path: &str, token: Option<&str>) {
        let with_token = |request: RequestBuilder| match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let answer = self.expect(with_token(self.get(path)), 200).await;
        let revalidation = with_token(self.get(path)).header("if-none-match", answer.etag());
        self.expect(revalidation, 304).await;
    }

    /// The documented bounds and enums of every GET's parameters: the edges and members are
    /// answered, one past an edge and a non-member are a 400.
    async fn parameters(&self) {
        let admin = self.app.admin_token();
        for (method, template, operation) in self.contract.operations() {
            if method != "get" {
                continue;
            }
            let parameters: Vec<&Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            for p in &parameters {
                let name = p["name"].as_str().unwrap();
                let schema = self.contract.resolve(&p["schema"]);
                let mut cases: Vec<(String, bool)> = Vec::new();
                if schema["type"] == "integer" {
                    cases.push(("x".into(), false));
                    if let Some(min) = schema["minimum"].as_i64() {
                        cases.push((min.to_string(), true));
                        cases.push(((min - 1).to_string(), false));
                    }
                    if let Some(max) = schema["maximum"].as_i64() {
                        cases.push((max.to_string(), true));
                        cases.push(((max + 1).to_string(), false));
                    }
                }
                if let Some(members) = schema["enum"].as_array() {
                    cases.extend(
                        members
                            .iter()
                            .map(|m| (m.as_str().unwrap().to_owned(), true)),
                    );
                    cases.push(("not-a-member".into(), false));
                }
                for (value, valid) in cases {
                    let path = if p["in"] == "path" {
                        known_good(template, Some((name, &value)))
                    } else {
                        format!("{}?{name}={value}", known_good(template, None))
                    };
                    let mut request = self.get(&path);
                    if operation.get("security").is_some() {
                        request = request.bearer_auth(&admin);
                    }
                    let answer = self.send(request).await;
                    if valid {
                        assert!(
                            (200..300).contains(&answer.status),
                            "{path}: the documented value `{value}` of `{name}` is answered, not {}",
                            answer.status
                        );
                    } else {
                        assert_eq!(
                            answer.status, 400,
                            "{path}: `{value}` is outside what `{name}` documents"
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_every_real_response() {
    let app = TestApp::spawn().await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert!(served.headers().contains_key("etag"));
    let contract = Contract::new(served.json().await.expect("the document is JSON"));
    contract.assert_is_openapi_3_1();
    contract.assert_documents_the_routes_in_the_source();

    let probe = Probe::start(&app, &contract).await;
    let (user, other, admin) = (app.user_token(1), app.user_token(2), app.admin_token());

    // Public reads: 200, then 304 with the ETag; and their errors.
    for path in [
        "/movies/popular",
        "/movies/popular?limit=5",
        "/movies/1",
        "/movies/1/similar",
        "/movies/1/similar?limit=3",
        "/genres",
        "/genres/drama/top",
        "/genres/Sci-Fi/top?limit=3",
        "/openapi.json",
    ] {
        probe.cached(path, None).await;
    }
    for (path, status, code) in [
        ("/movies/abc", 400, "invalid_id"),
        ("/movies/%FF", 400, "invalid_path"),
        ("/movies/99999", 404, "movie_not_found"),
        ("/movies/popular?limit=0", 400, "invalid_limit"),
        ("/movies/abc/similar", 400, "invalid_id"),
        ("/movies/%FF/similar", 400, "invalid_path"),
        ("/movies/99999/similar", 404, "movie_not_found"),
        ("/movies/1/similar?limit=101", 400, "invalid_limit"),
        ("/genres/no-such-genre/top", 404, "genre_not_found"),
        ("/genres/drama/top?limit=101", 400, "invalid_limit"),
        ("/no/such/route", 404, "not_found"),
    ] {
        assert_eq!(
            probe.expect(probe.get(path), status).await.code(),
            code,
            "{path}"
        );
    }

    // A user's reads: theirs, an admin's; no token, a bad one, another user's.
    for path in [
        "/users/1/profile",
        "/users/1/recommendations",
        "/users/1/recommendations?n=3&strategy=genre",
        "/users/1/recommendations?n=5&exclude=1,50&genre=drama",
    ] {
        probe.cached(path, Some(&user)).await;
        probe.cached(path, Some(&admin)).await;
        probe.expect(probe.get(path), 401).await;
        probe
            .expect(probe.get(path).bearer_auth("not-a-jwt"), 401)
            .await;
        assert_eq!(
            probe
                .expect(probe.get(path).bearer_auth(&other), 403)
                .await
                .code(),
            "forbidden"
        );
    }
    for (path, status, code) in [
        ("/users/99999/profile", 404, "user_not_found"),
        ("/users/99999/recommendations", 404, "user_not_found"),
        ("/users/abc/profile", 400, "invalid_id"),
        (
            "/users/1/recommendations?strategy=random",
            400,
            "invalid_strategy",
        ),
        ("/users/1/recommendations?n=1000", 400, "invalid_limit"),
        (
            "/users/1/recommendations?exclude=1,x",
            400,
            "invalid_exclude",
        ),
        (
            "/users/1/recommendations?genre=no-such-genre",
            404,
            "genre_not_found",
        ),
    ] {
        let answer = probe
            .expect(probe.get(path).bearer_auth(&admin), status)
            .await;
        assert_eq!(answer.code(), code, "{path}");
    }

    // Ratings: new, replaced, and every refusal.
    let rate = |user: &str, token: &str| {
        probe
            .post(&format!("/users/{user}/ratings"))
            .bearer_auth(token.to_owned())
    };
    let rating = json!({ "movie_id": 1682, "rating": 4.0 });
    probe.expect(rate("1", &user).json(&rating), 201).await;
    probe.expect(rate("1", &user).json(&rating), 200).await;
    probe
        .expect(probe.post("/users/1/ratings").json(&rating), 401)
        .await;
    probe.expect(rate("1", &other).json(&rating), 403).await;
    probe.expect(rate("abc", &admin).json(&rating), 400).await;
    let oversized = format!(
        r#"{{"movie_id": 1, "rating": 4.0}}{}"#,
        " ".repeat(17 * 1024)
    );
    for (content_type, body, status, code) in [
        (
            "text/plain",
            rating.to_string(),
            415,
            "unsupported_media_type",
        ),
        ("application/json", "{".into(), 400, "malformed_json"),
        ("application/json", oversized, 413, "payload_too_large"),
        (
            "application/json",
            "[1682, 4.0]".into(),
            422,
            "invalid_body",
        ),
        (
            "application/json",
            r#"{"movie_id": 1}"#.into(),
            422,
            "invalid_body",
        ),
        (
            "application/json",
            r#"{"movie_id": 1, "rating": 4.3}"#.into(),
            422,
            "invalid_rating",
        ),
        (
            "application/json",
            r#"{"movie_id": 0, "rating": 4}"#.into(),
            422,
            "invalid_movie_id",
        ),
        (
            "application/json",
            r#"{"movie_id": 99999, "rating": 4}"#.into(),
            404,
            "movie_not_found",
        ),
    ] {
        let request = rate("1", &user)
            .header("content-type", content_type)
            .body(body);
        assert_eq!(probe.expect(request, status).await.code(), code, "{code}");
    }
    let unknown_user = probe.expect(rate("99999", &admin).json(&rating), 404).await;
    assert_eq!(unknown_user.code(), "user_not_found");

    // Operations.
    for path in ["/health", "/ready", "/metrics"] {
        probe.expect(probe.get(path), 200).await;
    }

    // The dashboard: the page and the icon to anyone; its script and style once built.
    probe.expect(probe.get("/admin/dashboard"), 200).await;
    probe.expect(probe.get("/favicon.ico"), 200).await;
    for path in [
        "/admin/dashboard/dashboard.js",
        "/admin/dashboard/dashboard.css",
    ] {
        let answer = probe.send(probe.get(path)).await;
        assert!(
            matches!(answer.status, 200 | 404),
            "{path}: {}",
            answer.status
        );
    }

    // Administration: an admin's token only; the POSTs refuse an oversized body.
    let traced = probe.expect(probe.get("/movies/2"), 200).await;
    let trace = format!(
        "/admin/trace/{}",
        traced.headers["x-request-id"].to_str().unwrap()
    );
    let no_trace = probe
        .get("/admin/trace/no-such-request")
        .bearer_auth(&admin);
    assert_eq!(probe.expect(no_trace, 404).await.code(), "trace_not_found");
    for (method, path) in [
        (Method::GET, "/admin/cache/stats"),
        (Method::GET, "/admin/dashboard/model"),
        (Method::GET, "/admin/edge/stats"),
        (Method::GET, trace.as_str()),
        (Method::POST, "/admin/cache/warm"),
        (Method::POST, "/admin/views/refresh"),
        (Method::POST, "/admin/model/reload"),
    ] {
        probe.expect(probe.request(method.clone(), path), 401).await;
        let by_user = probe.request(method.clone(), path).bearer_auth(&user);
        probe.expect(by_user, 403).await;
        probe
            .expect(probe.request(method.clone(), path).bearer_auth(&admin), 200)
            .await;
        if method == Method::POST {
            let oversized = probe
                .request(method, path)
                .bearer_auth(&admin)
                .body(vec![b' '; 17 * 1024]);
            probe.expect(oversized, 413).await;
        }
    }

    // Known paths with another method.
    for (method, path) in [
        (Method::DELETE, "/movies/1"),
        (Method::POST, "/genres"),
        (Method::GET, "/users/1/ratings"),
        (Method::PUT, "/admin/cache/warm"),
    ] {
        assert_eq!(
            probe.expect(probe.request(method, path), 405).await.code(),
            "method_not_allowed"
        );
    }

    probe.parameters().await;

    without_dependencies(&contract).await;
    contract.assert_every_documented_response_was_seen();
}

/// The 503s: an origin on a private PostgreSQL and Redis, nothing cached, PostgreSQL stopped
/// (every read and write that needs it), then Redis too (`/ready`).
async fn without_dependencies(contract: &Contract) {
    let pg = PrivateServer::postgres();
    let redis = PrivateServer::redis();
    let server = format!("postgres://origin@127.0.0.1:{}", pg.port);
    let admin_pool = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE movies")
        .execute(&admin_pool)
        .await
        .unwrap();
    admin_pool.close().await;
    let mut settings = test_settings(
        &format!("{server}/movies"),
        RedisMode::Single,
        &format!("redis://127.0.0.1:{}", redis.port),
    );
    // An edge that is not there: its stats are a 502.
    settings.edge_url = Some(
        format!("http://127.0.0.1:{}", tests::free_port())
            .parse()
            .unwrap(),
    );
    settings.purge_secret = Some("secret".to_owned().into());
    let app = TestApp::spawn_with(settings).await;
    let probe = Probe::start(&app, contract).await;
    let admin = app.admin_token();
    let no_edge = probe.get("/admin/edge/stats").bearer_auth(&admin);
    assert_eq!(probe.expect(no_edge, 502).await.code(), "edge_error");
    // A database without a trained model: no neighbours to give.
    let no_model = probe.get("/movies/1/similar");
    assert_eq!(
        probe.expect(no_model, 503).await.code(),
        "model_unavailable"
    );

    pg.stop();
    for path in [
        "/movies/popular",
        "/movies/1",
        "/genres",
        "/genres/drama/top",
        "/users/1/profile",
        "/users/1/recommendations",
        "/admin/dashboard/model",
    ] {
        let answer = probe.expect(probe.get(path).bearer_auth(&admin), 503).await;
        assert_eq!(answer.code(), "database_unavailable", "{path}");
    }
    let rating = json!({ "movie_id": 1, "rating": 4.0 });
    let refused = probe
        .post("/users/1/ratings")
        .bearer_auth(&admin)
        .json(&rating);
    probe.expect(refused, 503).await;
    for path in ["/admin/views/refresh", "/admin/model/reload"] {
        probe
            .expect(probe.post(path).bearer_auth(&admin), 503)
            .await;
    }
    probe.expect(probe.get("/ready"), 200).await;

    redis.stop();
    probe.expect(probe.get("/ready"), 503).await;
}

/// The checks have teeth: a changed shape, an undocumented status and an undocumented route
/// are each refused (no services needed).
#[test]
fn openapi_checks_refuse_a_changed_response() {
    let contract = Contract::new(serde_json::to_value(origin::openapi::document()).unwrap());
    let schema = json!({ "$ref": "#/components/schemas/Movie" });
    let movie = json!({
        "id": 1, "title": "Toy Story", "year": 1995, "genres": ["Animation"],
        "avg_rating": 3.88, "rating_count": 452,
    });
    assert_eq!(contract.validate(&schema, &movie), Ok(()));
    let mut added = movie.clone();
    added["poster"] = json!("toy-story.jpg");
    let mut removed = movie.clone();
    removed.as_object_mut().unwrap().remove("title");
    let mut retyped = movie.clone();
    retyped["id"] = json!("1");
    for (changed, what) in [
        (added, "a field added"),
        (removed, "a field removed"),
        (retyped, "a type changed"),
    ] {
        assert!(
            contract.validate(&schema, &changed).is_err(),
            "{what} is refused"
        );
    }

    let headers = HeaderMap::new();
    let body = movie.to_string();
    let check = |route: &str, status: u16| {
        contract.check(
            &Method::GET,
            "/movies/1",
            Some(route),
            status,
            &headers,
            body.as_bytes(),
        )
    };
    let undocumented_status = check("/movies/{id}", 418).unwrap_err();
    assert!(
        undocumented_status.contains("418 is not documented"),
        "{undocumented_status}"
    );
    let undocumented_route = check("/movies/{id}/poster", 200).unwrap_err();
    assert!(
        undocumented_route.contains("no such path"),
        "{undocumented_route}"
    );
    let missing_header = check("/movies/{id}", 200).unwrap_err();
    assert!(missing_header.contains("header"), "{missing_header}");
}
