//! Bearer tokens: HS256 JWTs in `Authorization: Bearer`, verified the same way by the origin
//! and by the edge (which answers a bad token's 401 itself, without an origin round trip).
//!
//! `sub` is the user id (decimal); a `role` claim of `admin` makes an administrator. Only HS256
//! is accepted (`alg: none`, other algorithms and other keys are refused), `exp` and `sub` are
//! required (RFC 7519 leaves every claim optional; this service needs both), `nbf` is honoured
//! when present, with `jsonwebtoken`'s default leeway of 60 s for clocks that differ. The
//! messages are the 401 bodies' `message`, identical from the edge and the origin.

use crate::params::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

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

/// Who a valid token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A user.
    User(UserId),
    /// An administrator.
    Admin,
}

impl Subject {
    /// Whether this subject may read and write `user`'s data: the user themself, or an
    /// administrator.
    pub fn may_access(self, user: UserId) -> bool {
        match self {
            Subject::Admin => true,
            Subject::User(me) => me == user,
        }
    }
}

/// Why a request is not authenticated: a 401, `unauthorized`, with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization` field.
    #[error("missing `Authorization: Bearer <token>` header")]
    Missing,
    /// An `Authorization` field that is not `Bearer <token>`.
    #[error("expected `Authorization: Bearer <token>`")]
    NotBearer,
    /// A token that does not verify (signature, algorithm, expiry, claims).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A valid token whose `sub` is neither a user id nor an administrator's.
    #[error("invalid token: `sub` is not a user id")]
    NotAUser,
}

/// The message of the 403 for a user's token on another user's data.
pub const FORBIDDEN_OTHER_USER: &str = "this token may only access its own user's data";

/// The token of an `Authorization` field's value (`None`: no field).
pub fn bearer(authorization: Option<&str>) -> Result<&str, TokenError> {
    let value = authorization.ok_or(TokenError::Missing)?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(TokenError::NotBearer)
}

/// Verifies tokens signed with one secret.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// A verifier for tokens signed with `secret`; `None` for an empty secret, which
    /// `jsonwebtoken` refuses (anyone could sign with it).
    pub fn new(secret: &[u8]) -> Option<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // RFC 7519 §4.1.5: "the JWT MUST NOT be accepted for processing" before `nbf`.
        validation.validate_nbf = true;
        Some(Verifier {
            key: DecodingKey::from_secret(secret).ok()?,
            validation,
        })
    }

    /// Who `token` names, if it verifies.
    pub fn verify(&self, token: &str) -> Result<Subject, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|err| TokenError::Invalid(err.to_string()))?;
        if data.claims.role.as_deref() == Some("admin") {
            return Ok(Subject::Admin);
        }
        UserId::parse(&data.claims.sub)
            .map(Subject::User)
            .map_err(|_| TokenError::NotAUser)
    }

    /// Who the request's `Authorization` field names: [`bearer`], then [`Verifier::verify`].
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Subject, TokenError> {
        self.verify(bearer(authorization)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const SECRET: &str = "unit-test-secret";
    // 2100-01-01: these tests never expire; `now` is only needed for `expired`.
    const LATER: u64 = 4_102_444_800;

    fn sign(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::new(SECRET.as_bytes()).unwrap()
    }

    #[test]
    fn users_and_admins() {
        let user = sign(Algorithm::HS256, SECRET, &json!({"sub": "7", "exp": LATER}));
        assert_eq!(verifier().verify(&user), Ok(Subject::User(UserId(7))));
        let admin = sign(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "admin", "role": "admin", "exp": LATER}),
        );
        assert_eq!(verifier().verify(&admin), Ok(Subject::Admin));
        assert!(Subject::User(UserId(7)).may_access(UserId(7)));
        assert!(!Subject::User(UserId(7)).may_access(UserId(8)));
        assert!(Subject::Admin.may_access(UserId(8)));
    }

    #[test]
    fn bad_tokens_are_refused() {
        let valid = sign(Algorithm::HS256, SECRET, &json!({"sub": "1", "exp": LATER}));
        let payload = valid.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}, the valid payload, no signature.
        let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        let cases = [
            ("garbage", "not-a-jwt".to_owned()),
            ("alg none", alg_none),
            (
                "wrong secret",
                sign(
                    Algorithm::HS256,
                    "other",
                    &json!({"sub": "1", "exp": LATER}),
                ),
            ),
            (
                "HS512",
                sign(Algorithm::HS512, SECRET, &json!({"sub": "1", "exp": LATER})),
            ),
            (
                "expired",
                sign(Algorithm::HS256, SECRET, &json!({"sub": "1", "exp": 1_000})),
            ),
            (
                "not yet valid",
                sign(
                    Algorithm::HS256,
                    SECRET,
                    &json!({"sub": "1", "exp": LATER, "nbf": LATER - 10}),
                ),
            ),
            (
                "no sub",
                sign(Algorithm::HS256, SECRET, &json!({"exp": LATER})),
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
                    &json!({"sub": "admin", "exp": LATER}),
                ),
            ),
            (
                "numeric sub",
                sign(Algorithm::HS256, SECRET, &json!({"sub": 1, "exp": LATER})),
            ),
        ];
        for (name, token) in cases {
            assert!(verifier().verify(&token).is_err(), "{name}");
        }
    }

    #[test]
    fn an_empty_secret_verifies_nothing() {
        assert!(Verifier::new(b"").is_none());
    }

    #[test]
    fn the_authorization_field() {
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(TokenError::NotBearer));
        assert_eq!(bearer(Some("Bearer  ")), Err(TokenError::NotBearer));
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer abc ")), Ok("abc"));
        assert_eq!(
            verifier()
                .authenticate(Some("Bearer nope"))
                .unwrap_err()
                .to_string(),
            "invalid token: InvalidToken"
        );
    }
}
