//! Authentication and authorisation: HS256 JWTs in `Authorization: Bearer`.
//!
//! `sub` is the user id; a `role` claim of `admin` makes an administrator. A user reads and
//! writes only their own data; administrators may read and write anyone's and are the only
//! ones allowed on `/admin/*`. A missing or bad token is 401; a valid token for the wrong
//! user, or a user on an admin endpoint, is 403.

use crate::error::AppError;
use crate::http::PathParam;
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
    /// Issued at. Optional (RFC 7519 §4.1.6): only `sub` and `exp` are required.
    #[serde(default)]
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
        // RFC 7519 §4.1.5: "the JWT MUST NOT be accepted for processing" before `nbf`.
        validation.validate_nbf = true;
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

/// The user named by the route's `{id}`, once the caller may act for them: 401 without a valid
/// token, 400 for a malformed id, 403 for another user's token. A handler that takes it before
/// its body never reads a body from a caller who may not send one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizedUser(pub UserId);

impl FromRequestParts<AppState> for AuthorizedUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let PathParam(id) = PathParam::<String>::from_request_parts(parts, state).await?;
        let user = UserId::parse(&id)?;
        caller.ensure_can_access(user)?;
        Ok(AuthorizedUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const SECRET: &str = "unit-test-secret";

    fn tokens() -> Tokens {
        Tokens::new(&SecretString::from(SECRET.to_owned()))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn minted_tokens_verify() {
        let t = tokens();
        let user = t
            .mint(Caller::User(UserId(7)), Duration::from_secs(60))
            .unwrap();
        assert_eq!(t.verify(&user).unwrap(), Caller::User(UserId(7)));
        let admin = t.mint(Caller::Admin, Duration::from_secs(60)).unwrap();
        assert_eq!(t.verify(&admin).unwrap(), Caller::Admin);
    }

    #[test]
    fn only_sub_and_exp_are_required() {
        let token = sign(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "3", "exp": now() + 60}),
        );
        assert_eq!(tokens().verify(&token).unwrap(), Caller::User(UserId(3)));
    }

    #[test]
    fn bad_tokens_are_401() {
        let exp = now() + 600;
        let valid = sign(Algorithm::HS256, SECRET, &json!({"sub": "1", "exp": exp}));
        let payload = valid.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}, the valid payload, no signature.
        let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        let cases = [
            ("garbage", "not-a-jwt".to_owned()),
            ("alg none", alg_none),
            (
                "wrong secret",
                sign(Algorithm::HS256, "other", &json!({"sub": "1", "exp": exp})),
            ),
            (
                "HS512",
                sign(Algorithm::HS512, SECRET, &json!({"sub": "1", "exp": exp})),
            ),
            (
                "expired",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": now() - 3600}),
                ),
            ),
            (
                "not yet valid",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": exp, "nbf": now() + 3600}),
                ),
            ),
            (
                "no sub",
                sign(Algorithm::HS256, SECRET, &json!({"exp": exp})),
            ),
            (
                "no exp",
                sign(Algorithm::HS256, SECRET, &json!({"sub": "1"})),
            ),
            (
                "sub not a user id",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "admin", "exp": exp}),
                ),
            ),
            (
                "numeric sub",
                sign(Algorithm::HS256, SECRET, &json!({"sub": 1, "exp": exp})),
            ),
        ];
        for (name, token) in cases {
            let err = tokens().verify(&token).expect_err(name);
            assert_eq!(err.status(), axum::http::StatusCode::UNAUTHORIZED, "{name}");
        }
    }

    #[test]
    fn only_the_user_or_an_admin_may_access() {
        assert!(Caller::User(UserId(1)).ensure_can_access(UserId(1)).is_ok());
        assert!(Caller::Admin.ensure_can_access(UserId(1)).is_ok());
        let err = Caller::User(UserId(2))
            .ensure_can_access(UserId(1))
            .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
    }
}
