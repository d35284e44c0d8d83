//! `GET /users/{id}/recommendations?exclude=...&genre=...`: filters applied to the user's
//! cached list of 100, never to a cache entry of their own.

use serde_json::Value;
use shared::cache_key::Family;
use shared::dto::Recommendations;
use shared::params::{Strategy, UserId};
use tests::TestApp;

const USER: i32 = 13;

/// The response to `query` as the user: status, `Cache-Status`, ETag and body.
async fn read(app: &TestApp, query: &str) -> (u16, String, String, Value) {
    let response = app
        .get_as(
            &format!("/users/{USER}/recommendations{query}"),
            &app.user_token(USER),
        )
        .await;
    tests::read_json(response).await
}

fn ids(list: &Recommendations) -> Vec<i32> {
    list.items.iter().map(|i| i.movie_id).collect()
}

/// Whether the Redis key exists.
async fn exists(app: &TestApp, key: &str) -> bool {
    let found: i64 = app
        .state
        .cache
        .redis()
        .query(redis::cmd("EXISTS").arg(key))
        .await
        .unwrap();
    found == 1
}

#[tokio::test]
async fn filters_cut_the_cached_superset_and_add_no_cache_key() {
    let app = TestApp::spawn().await;
    let keys = app.state.cache.keys().clone();
    let key = |n: u32| keys.recommendations(UserId(USER), n, Strategy::Hybrid);

    let (_, plain) = app.recommendations(USER, "").await;
    assert_eq!(plain.items.len(), 10);
    let (status, _, plain_etag, _) = read(&app, "").await;
    assert_eq!(status, 200);
    let (_, full) = app.recommendations(USER, "?n=100").await;
    assert_eq!(full.items.len(), 100);
    let computed = app
        .state
        .cache
        .stats()
        .snapshot(Family::Recommendations)
        .computations;

    // exclude: those ids are gone, the list is filled up from the superset.
    let excluded: Vec<i32> = ids(&full)[..3].to_vec();
    let query = format!(
        "?exclude={}",
        excluded
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, cache, etag, body) = read(&app, &query).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        cache.starts_with("origin; hit"),
        "served from the superset: {cache}"
    );
    let filtered: Recommendations = serde_json::from_value(body).unwrap();
    assert_eq!(filtered.items.len(), 10);
    assert!(ids(&filtered).iter().all(|id| !excluded.contains(id)));
    assert_eq!(ids(&filtered), ids(&full)[3..13], "the superset's order");
    assert_ne!(etag, plain_etag, "another body, another ETag");
    let revalidated = app
        .client
        .get(app.url(&format!("/users/{USER}/recommendations{query}")))
        .bearer_auth(app.user_token(USER))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    // genre, by name or slug: only that genre, in the superset's order, cut to n.
    let (status, _, _, body) = read(&app, "?genre=comedy&n=5").await;
    assert_eq!(status, 200, "{body}");
    let comedies: Recommendations = serde_json::from_value(body).unwrap();
    assert!(!comedies.items.is_empty());
    assert!(comedies.items.len() <= 5);
    assert!(
        comedies
            .items
            .iter()
            .all(|i| i.genres.iter().any(|g| g == "Comedy")),
        "{comedies:?}"
    );
    let expected: Vec<i32> = full
        .items
        .iter()
        .filter(|i| i.genres.iter().any(|g| g == "Comedy"))
        .map(|i| i.movie_id)
        .take(5)
        .collect();
    assert_eq!(ids(&comedies), expected);
    let (_, _, _, by_name) = read(&app, "?genre=Children%27s&n=100").await;
    let childrens: Recommendations = serde_json::from_value(by_name).unwrap();
    assert!(
        childrens.items.len() < 100,
        "fewer than n survive: what survives comes back"
    );
    assert!(
        childrens
            .items
            .iter()
            .all(|i| i.genres.iter().any(|g| g == "Children's"))
    );
    let (_, _, _, both) = read(&app, &format!("{query}&genre=drama&n=3")).await;
    let both: Recommendations = serde_json::from_value(both).unwrap();
    assert!(ids(&both).iter().all(|id| !excluded.contains(id)));
    assert!(
        both.items
            .iter()
            .all(|i| i.genres.iter().any(|g| g == "Drama"))
    );

    // No computation and no key per filter or n: only the superset's key.
    let stats = app.state.cache.stats().snapshot(Family::Recommendations);
    assert_eq!(
        stats.computations, computed,
        "filtered reads computed nothing"
    );
    assert!(exists(&app, &key(100)).await);
    assert!(
        exists(&app, &key(10)).await,
        "the unfiltered read's own key"
    );
    for n in [3, 5] {
        assert!(
            !exists(&app, &key(n)).await,
            "no key for n={n} of a filtered read"
        );
    }

    // Without filters, exactly as before: the same body and ETag for the same n.
    let (_, _, again_etag, _) = read(&app, "").await;
    assert_eq!(again_etag, plain_etag);
}

#[tokio::test]
async fn bad_filters_are_refused_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let hundred_and_one = (1..=101)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let hundred = (1..=100)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for (query, status, code) in [
        (
            format!("?exclude={hundred_and_one}"),
            400,
            "invalid_exclude",
        ),
        ("?exclude=1,abc".to_owned(), 400, "invalid_exclude"),
        ("?exclude=1,,2".to_owned(), 400, "invalid_exclude"),
        ("?exclude=0".to_owned(), 400, "invalid_exclude"),
        ("?exclude=".to_owned(), 400, "invalid_exclude"),
        ("?genre=no-such-genre".to_owned(), 404, "genre_not_found"),
    ] {
        let (got, _, _, body) = read(&app, &query).await;
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    let (got, _, _, body) = read(&app, &format!("?exclude={hundred}")).await;
    assert_eq!(got, 200, "100 ids are allowed: {body}");
}

/// Read-your-writes holds for filtered reads: they come from the user's list, which a rating
/// invalidates.
#[tokio::test]
async fn a_filtered_read_reflects_a_rating_at_once() {
    let app = TestApp::spawn().await;
    let (status, _, _, body) = read(&app, "?genre=drama&exclude=1").await;
    assert_eq!(status, 200);
    let before: Recommendations = serde_json::from_value(body).unwrap();
    let top = before.items[0].movie_id;
    assert!(app.rate(USER, top as i64, 5.0).await.status().is_success());
    let (status, cache, _, body) = read(&app, "?genre=drama&exclude=1").await;
    assert_eq!(status, 200);
    assert_eq!(
        cache, "origin; fwd=miss; stored",
        "recomputed after the rating"
    );
    let after: Recommendations = serde_json::from_value(body).unwrap();
    assert!(
        !ids(&after).contains(&top),
        "a movie the user just rated is no longer recommended"
    );
}
