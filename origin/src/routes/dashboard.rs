//! The operator's dashboard: `GET /admin/dashboard`, one page that shows live (every 2 s,
//! without reloading) what the origin reports: requests per second and P50/P95/P99 per route,
//! hit rate per cache family and per layer, Redis memory against `maxmemory`, evictions, ops/s
//! and latency, PostgreSQL's and Redis's states and circuit breakers, the model (its version,
//! the newest `origin eval` report, fold-in latency) and the active alerts, each with its
//! threshold drawn on its chart.
//!
//! **The token.** A browser cannot send a bearer token when it navigates, so the page is
//! served to anyone and holds nothing secret: its script asks for the admin token once, keeps
//! it in the tab's `sessionStorage` and sends it as `Authorization: Bearer` on its own
//! requests; the data stays behind the admin role (`/admin/cache/stats`,
//! `/admin/dashboard/model`; `/metrics` and `/ready` are public already). The token is never
//! put in a URL, so no access log holds it. A Content-Security-Policy lets the page run its
//! own script only.
//!
//! **The data.** The page reads the same sources an operator's tools read, and computes the
//! rest itself: rates, hit rates over time and quantiles are differences between two readings
//! (`/metrics`' histogram buckets, the stats' counters), as PromQL's `rate()` and
//! `histogram_quantile()` do. The page has the two readings; a server endpoint would have to
//! keep the previous one per viewer, and the numbers would differ from Prometheus's. The only
//! data added for it is [`model`]: the served model and the newest stored `origin eval`.
//!
//! **The bundle.** The script and style (`origin/dashboard/src`, charts by uPlot from npm) are
//! bundled by `scripts/build-dashboard.sh` into `origin/dashboard/dist/` and embedded in the
//! binary when it is compiled (`origin/build.rs`): the binary serves everything itself, works
//! offline and needs no folder beside it. A binary built without the bundle (`cargo build` of
//! a clean checkout) serves the page with a note saying how to build it.

use crate::auth::Admin;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use recommender::als::AlsParams;
use serde::Serialize;
use shared::dto::ErrorBody;
use std::sync::LazyLock;

/// The page's script and style, as built by `scripts/build-dashboard.sh`.
pub struct Bundle {
    /// `dashboard.js`.
    pub js: &'static [u8],
    /// `dashboard.css` (the page's and uPlot's).
    pub css: &'static [u8],
}

// `BUNDLE: Option<Bundle>`, written by origin/build.rs.
include!(concat!(env!("OUT_DIR"), "/dashboard_bundle.rs"));

/// The page shell, with `<!--BUNDLE-->` and `<!--NOTICE-->` to fill in.
const SHELL: &str = include_str!("../../dashboard/index.html");

/// 32×32, the page's icon and `/favicon.ico` (Chromium asks every site for it; a 404 would be
/// an error in the page's console).
const FAVICON: &[u8] = include_bytes!("../../dashboard/favicon.png");

/// The page's own script and style only; fetches to this origin only; no frames, no forms
/// sent anywhere (the token form is handled by the script).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The page as served by this binary.
static PAGE: LazyLock<String> = LazyLock::new(|| shell(BUNDLE.as_ref()));

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/dashboard", get(page))
        .route("/admin/dashboard/dashboard.js", get(script))
        .route("/admin/dashboard/dashboard.css", get(style))
        .route("/admin/dashboard/model", get(model))
        .route("/favicon.ico", get(favicon))
}

/// The page shell with the bundle's tags, or without them and with a note on how to build it.
fn shell(bundle: Option<&Bundle>) -> String {
    match bundle {
        Some(_) => SHELL
            .replace(
                "<!--BUNDLE-->",
                "<link rel=\"stylesheet\" href=\"/admin/dashboard/dashboard.css\">\n\
                 <script src=\"/admin/dashboard/dashboard.js\" defer></script>",
            )
            .replace("<!--NOTICE-->", ""),
        None => SHELL.replace("<!--BUNDLE-->", "").replace(
            "<!--NOTICE-->",
            "<p class=\"notice\" id=\"not-built\">This origin was built without the dashboard's \
             script. Build it with <code>scripts/build-dashboard.sh</code> (npm's uPlot and \
             esbuild, from <code>node_modules</code>), then build the origin again \
             (<code>cargo build -p origin</code>); <code>scripts/up.sh</code> does both.</p>",
        ),
    }
}

/// One static file, with its type.
fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The dashboard page
///
/// The page shell, to anyone: it holds no data and no secret. Its script asks for an admin
/// token and reads the admin routes with it.
#[utoipa::path(
    get,
    path = "/admin/dashboard",
    tag = "admin",
    responses((status = 200, description = "The page (HTML). Without the bundle built into the binary, a note saying how to build it.", body = String, content_type = "text/html"))
)]
async fn page() -> Response {
    let mut response = Html(PAGE.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The dashboard's script
///
/// The page's JavaScript, bundled with uPlot at build time.
#[utoipa::path(
    get,
    path = "/admin/dashboard/dashboard.js",
    tag = "admin",
    responses(
        (status = 200, description = "JavaScript.", body = String, content_type = "text/javascript"),
        (status = 404, description = "`not_found`: the binary was built without the bundle (`scripts/build-dashboard.sh`).", body = ErrorBody),
    )
)]
async fn script() -> Result<Response, AppError> {
    let bundle = BUNDLE.as_ref().ok_or_else(not_built)?;
    Ok(asset("text/javascript; charset=utf-8", bundle.js))
}

/// The dashboard's style
///
/// The page's CSS and uPlot's.
#[utoipa::path(
    get,
    path = "/admin/dashboard/dashboard.css",
    tag = "admin",
    responses(
        (status = 200, description = "CSS.", body = String, content_type = "text/css"),
        (status = 404, description = "`not_found`: the binary was built without the bundle (`scripts/build-dashboard.sh`).", body = ErrorBody),
    )
)]
async fn style() -> Result<Response, AppError> {
    let bundle = BUNDLE.as_ref().ok_or_else(not_built)?;
    Ok(asset("text/css; charset=utf-8", bundle.css))
}

fn not_built() -> AppError {
    AppError::not_found(
        "not_found",
        "the dashboard's bundle is not built into this binary: run scripts/build-dashboard.sh",
    )
}

/// The site's icon
///
/// A PNG, for browsers (they ask every site for `/favicon.ico`).
#[utoipa::path(
    get,
    path = "/favicon.ico",
    tag = "ops",
    responses((status = 200, description = "A 32×32 PNG.", body = String, content_type = "image/png"))
)]
async fn favicon() -> Response {
    asset("image/png", FAVICON)
}

/// `GET /admin/dashboard/model`: the served model and the newest `origin eval` report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelPanel {
    /// The version served by this instance; `null` without a trained model.
    pub version: Option<String>,
    /// When it was trained (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub trained_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its hyper-parameters.
    pub params: Option<Hyperparameters>,
    /// The newest stored `origin eval` report; `null` if `origin eval` never ran here.
    pub evaluation: Option<EvaluationPanel>,
}

/// The hyper-parameters of a model (`recommender::als::AlsParams`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Hyperparameters {
    /// Latent factors.
    pub factors: usize,
    /// Epochs (alternations).
    pub epochs: usize,
    /// Regularisation λ.
    pub reg: f32,
    /// Frequency exponent ν of the regularisation.
    pub reg_exponent: f32,
    /// Confidence scale α.
    pub alpha: f32,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl From<AlsParams> for Hyperparameters {
    fn from(p: AlsParams) -> Self {
        Hyperparameters {
            factors: p.factors,
            epochs: p.epochs,
            reg: p.reg,
            reg_exponent: p.reg_exponent,
            alpha: p.alpha,
            seed: p.seed,
        }
    }
}

/// Ranking quality at 10 on the test split (`recommender::metrics::Metrics`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Quality {
    /// Mean precision@10.
    pub precision: f64,
    /// Mean recall@10.
    pub recall: f64,
    /// Mean NDCG@10.
    pub ndcg: f64,
    /// Distinct movies recommended to anyone / all movies.
    pub coverage: f64,
    /// Users evaluated.
    pub users: usize,
}

impl From<recommender::metrics::Metrics> for Quality {
    fn from(m: recommender::metrics::Metrics) -> Self {
        Quality {
            precision: m.precision,
            recall: m.recall,
            ndcg: m.ndcg,
            coverage: m.coverage,
            users: m.users,
        }
    }
}

/// The newest `origin eval` report (table `model_evaluations`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvaluationPanel {
    /// When it ran (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub evaluated_at: chrono::DateTime<chrono::Utc>,
    /// Whether it ran on the data set served now (an import may have replaced it since).
    pub current_data: bool,
    /// The hyper-parameters it chose.
    pub chosen: Hyperparameters,
    /// Whether the served model was trained with them (the seed aside).
    pub chosen_is_served: bool,
    /// Candidates the grid tried.
    pub candidates: usize,
    /// The chosen model on the test split.
    pub model: Quality,
    /// The popularity baseline on the same split.
    pub popularity: Quality,
}

/// The model panel's data
///
/// The model this instance serves and the newest stored `origin eval` report.
#[utoipa::path(
    get,
    path = "/admin/dashboard/model",
    tag = "admin",
    security(("admin_jwt" = [])),
    responses(
        (status = 200, description = "The served model and the newest evaluation.", body = ModelPanel),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_ADMIN, body = ErrorBody),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn model(_: Admin, State(state): State<AppState>) -> Result<Json<ModelPanel>, AppError> {
    let served = state.model.get();
    // Through the breaker first: while PostgreSQL is known to be down this fails at once.
    let epoch = state.db.dataset_epoch().await?;
    let evaluation = crate::model::newest_evaluation(&state.db)
        .await?
        .map(|stored| EvaluationPanel {
            evaluated_at: stored.evaluated_at,
            current_data: stored.epoch.map_or(0, |e| e as u64) == epoch,
            chosen_is_served: served
                .as_ref()
                .is_some_and(|m| same_hyperparameters(&m.params, &stored.chosen)),
            chosen: stored.chosen.into(),
            candidates: stored.candidates,
            model: stored.model.into(),
            popularity: stored.popularity.into(),
        });
    Ok(Json(ModelPanel {
        version: served.as_ref().map(|m| m.version.clone()),
        trained_at: served.as_ref().map(|m| m.trained_at),
        params: served.as_ref().map(|m| m.params.into()),
        evaluation,
    }))
}

/// Equal but for the seed, which changes the starting point, not the model's kind.
fn same_hyperparameters(a: &AlsParams, b: &AlsParams) -> bool {
    AlsParams { seed: 0, ..*a } == AlsParams { seed: 0, ..*b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_links_the_bundle_when_built_and_says_how_to_build_it_otherwise() {
        let built = shell(Some(&Bundle { js: b"", css: b"" }));
        assert!(built.contains("<script src=\"/admin/dashboard/dashboard.js\" defer></script>"));
        assert!(built.contains("href=\"/admin/dashboard/dashboard.css\""));
        assert!(!built.contains("not-built"));
        assert!(!built.contains("<!--BUNDLE-->") && !built.contains("<!--NOTICE-->"));

        let missing = shell(None);
        assert!(!missing.contains("<script"), "no script to fail on");
        assert!(missing.contains("scripts/build-dashboard.sh"));
        assert!(!missing.contains("<!--BUNDLE-->") && !missing.contains("<!--NOTICE-->"));
    }

    #[test]
    fn the_seed_does_not_make_other_hyperparameters() {
        let a = AlsParams::default();
        assert!(same_hyperparameters(
            &a,
            &AlsParams {
                seed: a.seed + 1,
                ..a
            }
        ));
        assert!(!same_hyperparameters(
            &a,
            &AlsParams {
                factors: a.factors + 1,
                ..a
            }
        ));
    }
}
