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
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use shared::params::UserId;
pub use shared::token::Claims;
use shared::token::{Subject, TokenError, Verifier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        if Subject::from(self).may_access(user) {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                shared::token::FORBIDDEN_OTHER_USER.into(),
            ))
        }
    }
}

impl From<Caller> for Subject {
    fn from(caller: Caller) -> Subject {
        match caller {
            Caller::User(user) => Subject::User(user),
            Caller::Admin => Subject::Admin,
        }
    }
}

impl From<Subject> for Caller {
    fn from(subject: Subject) -> Caller {
        match subject {
            Subject::User(user) => Caller::User(user),
            Subject::Admin => Caller::Admin,
        }
    }
}

impl From<TokenError> for AppError {
    fn from(err: TokenError) -> AppError {
        AppError::Unauthorized(err.to_string())
    }
}

/// Signs and verifies tokens with one secret (the verification is `shared::token`'s, which
/// the edge runs too).
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    verifier: Verifier,
}

impl Tokens {
    /// Keys from the configured secret; an error for an empty one.
    pub fn new(secret: &SecretString) -> anyhow::Result<Self> {
        let bytes = secret.expose_secret().as_bytes();
        let empty = || anyhow::anyhow!("JWT_SECRET is empty: set it to a long random value");
        Ok(Tokens {
            encoding: EncodingKey::from_secret(bytes).map_err(|_| empty())?,
            verifier: Verifier::new(bytes).ok_or_else(empty)?,
        })
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
        Ok(self.verifier.verify(token)?.into())
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
            .map(|value| value.to_str().unwrap_or_default());
        state.tokens.verify(shared::token::bearer(header)?)
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
        Tokens::new(&SecretString::from(SECRET.to_owned())).unwrap()
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
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
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
        // Every kind of bad token is `shared::token`'s test; here, that each is a 401.
        let cases = [
            ("garbage", "not-a-jwt".to_owned()),
            (
                "expired",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": now() - 3600}),
                ),
            ),
            (
                "sub not a user id",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "admin", "exp": now() + 600}),
                ),
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
