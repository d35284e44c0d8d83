//! A user's own data: profile, recommendations (private, revalidated with ETags) and ratings
//! (never cached). Every route needs the user's token (or an admin's).

use crate::auth::{AuthorizedUser, Caller};
use crate::error::AppError;
use crate::http::{JsonBody, PathParam, QueryMap, conditional};
use crate::reads;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shared::cache_control;
use shared::cache_key::Family;
use shared::dto::{ErrorBody, Genres, NewRating, Profile, RatingReceipt, Recommendations};
use shared::params::{Exclude, Limit, MovieId, Rating, Strategy, UserId};
use shared::purge_marks::tag;

/// The user routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/{id}/profile", get(profile))
        .route("/users/{id}/recommendations", get(recommendations))
        .route("/users/{id}/ratings", post(rate))
}

/// A user's profile
///
/// Rating count and mean, favourite genres, last activity. Private: revalidate with the ETag.
#[utoipa::path(
    get,
    path = "/users/{id}/profile",
    tag = "users",
    params(("id" = i32, Path, minimum = 1, description = "The user's id.")),
    security(("user_jwt" = []), ("admin_jwt" = [])),
    responses(
        (status = 200, description = "The profile.", body = Profile),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 400, description = "`invalid_id`, `invalid_path`.", body = ErrorBody),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_USER, body = ErrorBody),
        (status = 404, description = "`user_not_found`.", body = ErrorBody),
        (status = 503, description = crate::openapi::DATABASE_UNAVAILABLE, body = ErrorBody),
    )
)]
async fn profile(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let user = UserId::parse(&id)?;
    caller.ensure_can_access(user)?;
    state.activity.saw(user);
    let served = reads::profile(&state, user).await?;
    Ok(personal(conditional(
        &headers,
        served.whole(),
        cache_control::PRIVATE,
        &served.status,
    )))
}

/// A user's recommendations
///
/// Best first, never a movie the user rated. Private: revalidate with the ETag; a new rating
/// changes them at once. With `exclude` or `genre`, the filters are applied to the user's
/// list of 100 (cached like any `n=100` request) and the survivors cut to `n`: fewer than `n`
/// when fewer survive.
#[utoipa::path(
    get,
    path = "/users/{id}/recommendations",
    tag = "users",
    params(
        ("id" = i32, Path, minimum = 1, description = "The user's id."),
        crate::openapi::RecommendationsQuery,
    ),
    security(("user_jwt" = []), ("admin_jwt" = [])),
    responses(
        (status = 200, description = "The recommendations.", body = Recommendations),
        (status = 304, description = crate::openapi::NOT_MODIFIED),
        (status = 400, description = "`invalid_id`, `invalid_path`, `invalid_limit`, `invalid_strategy`, \
            `invalid_exclude` (not 1 to 100 comma-separated movie ids).", body = ErrorBody),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_USER, body = ErrorBody),
        (status = 404, description = "`user_not_found`; `genre_not_found` for a `genre` that is no \
            genre's name or slug (as `/genres/{genre}/top` answers).", body = ErrorBody),
        (status = 503, description = "`database_unavailable` (retry shortly), or `model_unavailable`: \
            the `collaborative` strategy without a trained model.", body = ErrorBody),
    )
)]
async fn recommendations(
    caller: Caller,
    State(state): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryMap(query): QueryMap,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let user = UserId::parse(&id)?;
    caller.ensure_can_access(user)?;
    state.activity.saw(user);
    let n = Limit::parse("n", query.get("n").map(String::as_str), Limit::DEFAULT_N)?;
    let strategy = Strategy::parse(query.get("strategy").map(String::as_str))?;
    let exclude = query
        .get("exclude")
        .map(|raw| Exclude::parse(raw))
        .transpose()?;
    let genre = match query.get("genre") {
        Some(genre) => Some(reads::find_genre(&state, genre).await?),
        None => None,
    };
    let filter = reads::RecommendationFilter { exclude, genre };
    if filter.is_active() {
        let (rendered, status) =
            reads::filtered_recommendations(&state, user, n, strategy, &filter).await?;
        return Ok(personal(conditional(
            &headers,
            rendered,
            cache_control::PRIVATE,
            &status,
        )));
    }
    let served = reads::recommendations(&state, user, n, strategy).await?;
    let rendered = reads::recommendations_response(&state, &served).await?;
    Ok(personal(conditional(
        &headers,
        rendered,
        cache_control::PRIVATE,
        &served.status,
    )))
}

/// A personal read's response with the edge's own directives (RFC 9213 targeted field): the
/// edge may keep it per user and generation for a few seconds (`shared::personal`); every
/// other cache reads only `private, no-cache`.
fn personal(mut response: Response) -> Response {
    response.headers_mut().insert(
        cache_control::EDGE_FIELD,
        axum::http::HeaderValue::from_static(cache_control::EDGE_PERSONAL),
    );
    response
}

/// Rate a movie
///
/// Commits the rating, then invalidates the user's cached values before answering
/// (read-your-writes); every `RATING_MILESTONE`th rating of a movie also invalidates the
/// popular and genre lists and the movie's metadata. The caller is checked before the body is
/// read: another user's token is a 403 whatever the body holds.
#[utoipa::path(
    post,
    path = "/users/{id}/ratings",
    tag = "users",
    params(("id" = i32, Path, minimum = 1, description = "The user's id.")),
    security(("user_jwt" = []), ("admin_jwt" = [])),
    request_body(
        content = NewRating,
        content_type = "application/json",
        description = "A JSON object of at most 16 KiB; `rating` is 0.5 to 5.0 in steps of 0.5.",
    ),
    responses(
        (status = 200, description = "An earlier rating of this movie was replaced.", body = RatingReceipt),
        (status = 201, description = "A new rating.", body = RatingReceipt),
        (status = 400, description = "`invalid_id`, `invalid_path`, `malformed_json` (not JSON), \
            `unreadable_body`.", body = ErrorBody),
        (status = 401, description = crate::openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = crate::openapi::FORBIDDEN_USER, body = ErrorBody),
        (status = 404, description = "`user_not_found`, `movie_not_found`.", body = ErrorBody),
        (status = 413, description = crate::openapi::PAYLOAD_TOO_LARGE, body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: no `Content-Type: application/json`.", body = ErrorBody),
        (status = 422, description = "`invalid_body` (not an object, missing, unknown or mistyped \
            fields), `invalid_movie_id`, `invalid_rating`.", body = ErrorBody),
        (status = 503, description = "`database_unavailable`: the rating was not stored; retry shortly.", body = ErrorBody),
    )
)]
async fn rate(
    AuthorizedUser(user): AuthorizedUser,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewRating>,
) -> Result<Response, AppError> {
    let movie = i32::try_from(body.movie_id)
        .ok()
        .filter(|id| *id > 0)
        .map(MovieId)
        .ok_or_else(|| AppError::Unprocessable {
            code: "invalid_movie_id",
            message: format!("{} is not a valid movie id", body.movie_id),
        })?;
    let rating = Rating::parse(body.rating)?;
    state.activity.saw(user);

    let outcome = state.db.rate(user, movie, rating).await?;
    state.cache.invalidate_user(user).await;
    if !outcome.replaced && outcome.movie_rating_count % state.settings.rating_milestone.max(1) == 0
    {
        invalidate_lists(&state, movie).await;
    }

    let receipt = RatingReceipt {
        user_id: user.0,
        movie_id: movie.0,
        rating: rating.get(),
        replaced: outcome.replaced,
        movie_rating_count: outcome.movie_rating_count,
    };
    let status = if outcome.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    // The user's new generation, which the edge keys this user's reads on from now.
    Ok((
        status,
        [(
            shared::personal::GENERATION_HEADER,
            outcome.rating_version.to_string(),
        )],
        Json(receipt),
    )
        .into_response())
}

/// A milestone: the popular list, every genre list the movie is in, and its metadata; here and
/// at the edge (by tag, in the background).
async fn invalidate_lists(state: &AppState, movie: MovieId) {
    let keys = state.cache.keys().clone();
    tracing::info!(
        movie = movie.0,
        "rating milestone: invalidating popular and genre lists"
    );
    state
        .cache
        .invalidate_keys(Family::Popular, vec![keys.popular()])
        .await;
    state
        .cache
        .invalidate_keys(Family::Metadata, vec![keys.movie(movie)])
        .await;
    let genre_ids = state.db.movie_genre_ids(movie).await.unwrap_or_default();
    let genre_slugs: Vec<String> = match reads::genres(state)
        .await
        .and_then(|served| reads::parse::<Genres>(&served))
    {
        Ok(genres) => genres
            .genres
            .iter()
            .filter(|g| genre_ids.contains(&g.id))
            .map(|g| g.slug.clone())
            .collect(),
        Err(err) => {
            tracing::warn!(error = %err, "could not list genres to invalidate");
            Vec::new()
        }
    };
    let genre_keys = genre_slugs
        .iter()
        .map(|slug| keys.genre_top(slug))
        .collect();
    // The edge's copies too, everywhere, in the background.
    let mut tags = vec![tag::POPULAR.to_owned(), tag::movie(movie.0)];
    tags.extend(genre_slugs.iter().map(|slug| tag::genre(slug)));
    crate::edge::purge_in_background(&state.settings, tags);
    state
        .cache
        .invalidate_keys(Family::Genres, genre_keys)
        .await;
}
