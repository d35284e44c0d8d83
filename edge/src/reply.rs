//! Building responses: JSON errors in the origin's shape, served copies with `Age` and
//! `Cache-Status`, and 304s for matching `If-None-Match`.

use shared::cache_status::CacheStatus;
use shared::dto::ErrorBody;
use worker::{Headers, Response, Result};

/// A JSON error `{"error": {"code", "message"}}` the edge makes itself: never stored, and
/// without `Cache-Status` (RFC 9211 §2: an intermediary does not add a member to responses it
/// generates locally).
pub fn error(status: u16, code: &str, message: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", shared::cache_control::NO_STORE)?;
    let body = serde_json::to_vec(&ErrorBody::new(code, message))
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers))
}

/// 401 for a request whose token the edge refuses, as the origin answers it
/// (`WWW-Authenticate: Bearer`, RFC 6750 3), without asking the origin.
pub fn unauthorized(message: &str) -> Result<Response> {
    let mut response = error(401, "unauthorized", message)?;
    response.headers_mut().set("www-authenticate", "Bearer")?;
    Ok(response)
}

/// Whether a response field (lower-case) is between the origin and the edge only: the tags,
/// the edge's targeted cache directives, the user's generation. Never passed to a client.
pub fn internal(name: &str) -> bool {
    name == shared::purge_marks::TAGS_HEADER
        || name == shared::cache_control::EDGE_FIELD
        || name == shared::personal::GENERATION_HEADER
}

/// 502 when the origin refused or failed, 504 when it did not answer in time.
pub fn origin_failed(timed_out: bool, detail: &str) -> Result<Response> {
    if timed_out {
        error(
            504,
            "origin_timeout",
            &format!(
                "the origin did not answer in time and no stored copy can be served ({detail})"
            ),
        )
    } else {
        error(
            502,
            "origin_unavailable",
            &format!("the origin could not be reached and no stored copy can be served ({detail})"),
        )
    }
}

/// A body and headers as the client receives them: `Cache-Status` with the edge's member
/// appended, `Age` when served from the cache, and a 304 instead of the body when the client's
/// `If-None-Match` matches.
#[derive(Debug, Clone)]
pub struct Served {
    /// Status code of the full response.
    pub status: u16,
    /// Header fields (without the edge's internal ones).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Served {
    /// The value of a header field.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The response to the client.
    pub fn respond(
        self,
        edge: CacheStatus,
        age: Option<u64>,
        if_none_match: Option<&str>,
    ) -> Result<Response> {
        let headers = Headers::new();
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if lower == "cache-status"
                || lower == "age"
                || lower == "content-length"
                || internal(&lower)
            {
                continue;
            }
            headers.append(name, value)?;
        }
        headers.set("cache-status", &edge.append_to(self.header("cache-status")))?;
        if let Some(age) = age {
            headers.set("age", &age.to_string())?;
        }
        if self.status == 200
            && shared::revalidation::serve_not_modified(if_none_match, self.header("etag"))
        {
            // The fields a 304 must carry (RFC 9110 15.4.5, quoted in `shared::revalidation`).
            let not_modified = Headers::new();
            for (name, value) in headers.entries() {
                if shared::revalidation::NOT_MODIFIED_FIELDS.contains(&name.as_str())
                    || name == "cache-status"
                    || name == "age"
                {
                    not_modified.set(&name, &value)?;
                }
            }
            return Ok(Response::empty()?
                .with_status(304)
                .with_headers(not_modified));
        }
        Ok(Response::from_bytes(self.body)?
            .with_status(self.status)
            .with_headers(headers))
    }
}
