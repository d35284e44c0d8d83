//! Authentication and authorisation: HS256 JWTs in `Authorization: Bearer`.
//!
//! `sub` is the user id; a `role` claim of `admin` makes an administrator. A user reads and
//! writes only their own data; administrators may read and write anyone's and are the only
//! ones allowed on `/admin/*`. A missing or bad token is 401; a valid token for the wrong
//! user, or a user on an admin endpoint, is 403.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use shared::params::UserId;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The claims this service reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (decimal), or `admin`.
    pub sub: String,
    /// `admin` for administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
}

/// Who made the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A user.
    User(UserId),
    /// An administrator.
    Admin,
}

impl Caller {
    /// 403 unless the caller is `user` or an administrator.
    pub fn ensure_can_access(self, user: UserId) -> Result<(), AppError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::User(me) if me == user => Ok(()),
            Caller::User(_) => Err(AppError::Forbidden(
                "this token may only access its own user's data".into(),
            )),
        }
    }
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Tokens {
    /// Keys from the configured secret.
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        Tokens {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        }
    }

    /// A token for `caller`, valid for `ttl`.
    pub fn mint(&self, caller: Caller, ttl: Duration) -> anyhow::Result<String> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = match caller {
            Caller::User(user) => Claims {
                sub: user.0.to_string(),
                role: None,
                exp: iat + ttl.as_secs(),
                iat,
            },
            Caller::Admin => Claims {
                sub: "admin".into(),
                role: Some("admin".into()),
                exp: iat + ttl.as_secs(),
                iat,
            },
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The caller a token names, or 401.
    pub fn verify(&self, token: &str) -> Result<Caller, AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|err| AppError::Unauthorized(format!("invalid token: {err}")))?;
        if data.claims.role.as_deref() == Some("admin") {
            return Ok(Caller::Admin);
        }
        UserId::parse(&data.claims.sub)
            .map(Caller::User)
            .map_err(|_| AppError::Unauthorized("invalid token: `sub` is not a user id".into()))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                AppError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthorized("expected `Authorization: Bearer <token>`".into())
            })?;
        state.tokens.verify(token)
    }
}

/// An administrator, or a 401/403 rejection.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::User(_) => Err(AppError::Forbidden(
                "this endpoint needs the admin role".into(),
            )),
        }
    }
}
