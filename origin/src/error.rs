//! The origin's one error type. Every variant maps to a status and a JSON body
//! `{"error": {"code", "message"}}`; database and internal errors are logged and shown only as
//! an opaque message, never with their details.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::dto::ErrorBody;
use shared::params::ParamError;
use std::sync::Arc;

/// Everything a request can fail with. Cheap to clone, so one computation's error can be
/// handed to every request that waited for it (single flight).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// 400 Bad Request: malformed id, limit, strategy, query or body.
    #[error("{message}")]
    BadRequest {
        /// Error code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// 401 Unauthorized: no token, or a token that does not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 Forbidden: a valid token for someone else's data, or not an admin.
    #[error("{0}")]
    Forbidden(String),
    /// 404 Not Found: an unknown movie, user, genre or route.
    #[error("{message}")]
    NotFound {
        /// Error code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// 405 Method Not Allowed.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413 Content Too Large: a request body over the limit (`http::MAX_BODY_BYTES`).
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 415 Unsupported Media Type: a request body without `Content-Type: application/json`.
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// 422 Unprocessable Content: a well-formed body with invalid values, or a JSON value that
    /// is not the object the endpoint expects.
    #[error("{message}")]
    Unprocessable {
        /// Error code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// 502 Bad Gateway: a service this request reads from (the edge, for its stats) did not
    /// answer as it should.
    #[error("{message}")]
    BadGateway {
        /// Error code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// 503 Service Unavailable: a dependency (PostgreSQL, the model) is missing and nothing
    /// cached can stand in for it.
    #[error("{message}")]
    Unavailable {
        /// Error code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// 500 Internal Server Error: logged in full, shown opaque.
    #[error("internal error: {0}")]
    Internal(Arc<anyhow::Error>),
}

impl AppError {
    /// 404 with a code and message.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        AppError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// 503: PostgreSQL cannot be reached.
    pub fn database_unavailable() -> Self {
        AppError::Unavailable {
            code: "database_unavailable",
            message: "the database is unavailable and no cached copy can be served; retry shortly"
                .into(),
        }
    }

    /// Whether this error means the source of truth could not be reached (so a stale cached
    /// copy may stand in).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AppError::Unavailable { .. })
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Unprocessable { code, .. }
            | AppError::BadGateway { code, .. }
            | AppError::Unavailable { code, .. } => code,
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::Internal(_) => "internal",
        }
    }
}

impl From<ParamError> for AppError {
    fn from(err: ParamError) -> Self {
        match err {
            // A rating arrives in a well-formed body: its value is unprocessable, not malformed.
            ParamError::InvalidRating(_) => AppError::Unprocessable {
                code: err.code(),
                message: err.to_string(),
            },
            _ => AppError::BadRequest {
                code: err.code(),
                message: err.to_string(),
            },
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %err, "database unavailable");
                AppError::database_unavailable()
            }
            // The server is shutting down or restarting (admin shutdown, crash recovery).
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P")) => {
                tracing::warn!(error = %err, "database unavailable");
                AppError::database_unavailable()
            }
            _ => AppError::Internal(Arc::new(anyhow::Error::new(err).context("database query"))),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        AppError::Internal(Arc::new(err))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let message = match &self {
            AppError::Internal(err) => {
                tracing::error!(
                    error = ?err,
                    request_id = crate::telemetry::current_request_id(),
                    "internal error"
                );
                "something went wrong on our side; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            self.status(),
            axum::Json(ErrorBody::new(self.code(), message)),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(shared::cache_control::NO_STORE),
        );
        if matches!(self, AppError::Unauthorized(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, AppError::Unavailable { .. }) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
