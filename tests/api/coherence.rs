//! Two origin instances sharing PostgreSQL and Redis, each with its own local tier: a write
//! acknowledged by one is never hidden by the other's copy (a user's values), and a shared
//! value invalidated through one leaves the other's tier as soon as Redis's notice is read.
//! Run on the single Redis and on the Cluster like every end-to-end test.

use shared::dto::{PopularMovies, Profile};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tests::{TestApp, fresh_database, redis_mode, redis_url, test_settings};

/// Two instances over one database and one cache namespace, with one token secret.
async fn two_instances(milestone: i64) -> (TestApp, TestApp) {
    let mode = redis_mode();
    let db = fresh_database().await;
    let mut first = test_settings(&db, mode, &redis_url(mode));
    first.rating_milestone = milestone;
    first.instance_name = Some("first".into());
    let mut second = test_settings(&db, mode, &redis_url(mode));
    second.rating_milestone = milestone;
    second.instance_name = Some("second".into());
    second.cache_namespace = first.cache_namespace.clone();
    second.jwt_secret = first.jwt_secret.clone();
    second.migrate_on_start = false;
    let a = TestApp::spawn_with(first).await;
    let b = TestApp::spawn_with(second).await;
    for app in [&a, &b] {
        wait_for_tracking(app).await;
    }
    (a, b)
}

/// Waits (bounded) until the instance's tracking session is live, so that its local tier
/// serves shared values.
async fn wait_for_tracking(app: &TestApp) {
    for _ in 0..200 {
        if app.state.cache.local_snapshot().tracking_session != 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no tracking session within 5 s");
}

async fn profile(app: &TestApp, user: i32) -> Profile {
    let response = app
        .get_as(&format!("/users/{user}/profile"), &app.user_token(user))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("profile JSON")
}

async fn stats(app: &TestApp) -> serde_json::Value {
    let response = app.get_as("/admin/cache/stats", &app.admin_token()).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("stats JSON")
}

/// Reads across both instances while the pairs run: lists, metadata, other users' values.
fn background_load(
    a: &TestApp,
    b: &TestApp,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    let targets = [a.addr, b.addr];
    let tokens: Vec<(i32, String)> = (400..420).map(|u| (u, a.user_token(u))).collect();
    (0..4)
        .map(|worker| {
            let stop = Arc::clone(&stop);
            let tokens = tokens.clone();
            let client = reqwest::Client::new();
            tokio::spawn(async move {
                let mut done = 0u64;
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let addr = targets[(i / 4) % 2];
                    let (user, token) = &tokens[i % tokens.len()];
                    let path = match i % 4 {
                        0 => "/movies/popular?limit=20".to_owned(),
                        1 => format!("/movies/{}", 1 + i % 300),
                        2 => format!("/users/{user}/recommendations"),
                        _ => format!("/users/{user}/profile"),
                    };
                    let response = client
                        .get(format!("http://{addr}{path}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .expect("background request");
                    assert_eq!(response.status(), 200, "{path}");
                    done += 1;
                    i += 3;
                }
                done
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rating_on_one_instance_is_never_hidden_by_the_others_tier() {
    let (a, b) = two_instances(100).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = background_load(&a, &b, Arc::clone(&stop));

    const USERS: std::ops::Range<i32> = 1..11;
    const PAIRS_PER_USER: usize = 100;
    let pairs = AtomicU64::new(0);
    let stale = AtomicU64::new(0);
    let users = USERS.map(|user| {
        let (a, b, pairs, stale) = (&a, &b, &pairs, &stale);
        async move {
            // The instance that writes and the one that reads swap every pair.
            let mut count = profile(a, user).await.rating_count;
            let (_, mut recs) = b.recommendations(user, "").await;
            for i in 0..PAIRS_PER_USER {
                let (writer, reader) = if i % 2 == 0 { (a, b) } else { (b, a) };
                // The reader holds this user's values in its tier (read just before).
                let before = profile(reader, user).await;
                assert_eq!(before.rating_count, count);
                let (_, held) = reader.recommendations(user, "").await;
                // Rate the reader's top recommendation: it must leave the list at once.
                let movie = held
                    .items
                    .first()
                    .map(|r| r.movie_id)
                    .unwrap_or(recs.items[0].movie_id);
                let written = writer.rate(user, movie.into(), 4.0).await;
                assert_eq!(written.status(), 201, "user {user} rates movie {movie}");
                count += 1;
                let after = profile(reader, user).await;
                let (_, now) = reader.recommendations(user, "").await;
                pairs.fetch_add(1, Ordering::Relaxed);
                if after.rating_count != count || now.items.iter().any(|r| r.movie_id == movie) {
                    stale.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "stale read: user {user} pair {i}: profile count {} (want {count}), \
                         rated movie {movie} still recommended: {}",
                        after.rating_count,
                        now.items.iter().any(|r| r.movie_id == movie)
                    );
                }
                recs = now;
            }
        }
    });
    futures::future::join_all(users).await;
    stop.store(true, Ordering::Relaxed);
    let mut background = 0;
    for task in load {
        background += task.await.expect("background load");
    }
    let pairs = pairs.load(Ordering::Relaxed);
    eprintln!(
        "{pairs} write/read pairs across two instances, {background} reads of load meanwhile"
    );
    assert_eq!(pairs, (USERS.len() * PAIRS_PER_USER) as u64);
    assert_eq!(
        stale.load(Ordering::Relaxed),
        0,
        "stale reads after a write on the other instance"
    );
    assert!(background > 0);

    // The pairs were served from the tiers where nothing had changed: each reader read the
    // profile it had just cached.
    for app in [&a, &b] {
        let stats = stats(app).await;
        let local = &stats["local"];
        assert!(local["hits"].as_u64().unwrap() > 0, "{local}");
        assert!(
            stats["families"]["profile"]["local_hits"].as_u64().unwrap() > 0,
            "{stats}"
        );
        assert!(local["size_bytes"].as_u64().unwrap() > 0, "{local}");
        assert!(local["size_bytes"].as_u64() <= local["capacity_bytes"].as_u64());
    }
    let metrics = b.get("/metrics").await.text().await.unwrap();
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    assert!(gauge("cache_local_bytes") > 0.0);
    assert!(gauge("cache_local_bytes") <= gauge("cache_local_capacity_bytes"));
    assert_eq!(gauge("cache_tracking_live"), 1.0);
    assert_eq!(stats(&a).await["local"]["instance"], "first");
    assert_eq!(stats(&b).await["local"]["instance"], "second");
}

#[tokio::test]
async fn a_shared_value_invalidated_through_one_instance_leaves_the_others_tier() {
    // Every rating is a milestone: each invalidates the popular list everywhere.
    let (a, b) = two_instances(1).await;
    let read = |app: &TestApp| {
        let url = app.url("/movies/popular?limit=100");
        let client = app.client.clone();
        async move {
            let response = client.get(url).send().await.expect("request");
            assert_eq!(response.status(), 200);
            let status = tests::cache_status(&response);
            let body: PopularMovies = response.json().await.expect("popular JSON");
            (status, body)
        }
    };
    let (_, first) = read(&b).await;
    let local_hits = b.state.cache.local_snapshot().tier.hits;
    let (status, again) = read(&b).await;
    assert!(status.starts_with("origin; hit"), "{status}");
    assert_eq!(again.movies, first.movies);
    assert_eq!(
        b.state.cache.local_snapshot().tier.hits,
        local_hits + 1,
        "the second read was served by the second instance's own tier"
    );

    // A new rating of the most popular movie, through the first instance.
    let top = &first.movies[0];
    let user = 900;
    let rated = a.rate(user, top.id.into(), 5.0).await;
    assert_eq!(rated.status(), 201);

    // Redis pushes the notice to the second instance on the connection its reads use; any
    // round trip of that connection to the key's node after the write returns after the
    // notice, which the connection's reader applies before handing the reply over.
    let key = b.state.cache.keys().popular();
    let _: Option<Vec<u8>> = b
        .state
        .cache
        .redis()
        .query(redis::cmd("GET").arg(&key))
        .await
        .expect("GET through the second instance's connection");
    let (_, fresh) = read(&b).await;
    let counted = fresh
        .movies
        .iter()
        .find(|m| m.id == top.id)
        .expect("still popular");
    assert_eq!(
        counted.rating_count,
        top.rating_count + 1,
        "the second instance serves the list as it is after the rating"
    );
    assert!(b.state.cache.local_snapshot().tracking_notices > 0);
}

#[tokio::test]
async fn a_lost_connection_ends_the_tracking_session_and_what_was_read_in_it() {
    // A private Redis, to be restarted.
    let redis = tests::PrivateServer::redis();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let settings = test_settings(
        &fresh_database().await,
        origin::settings::RedisMode::Single,
        &url,
    );
    let app = TestApp::spawn_with(settings).await;
    wait_for_tracking(&app).await;
    let popular = "/movies/popular?limit=5";
    for _ in 0..2 {
        assert_eq!(app.get(popular).await.status(), 200);
    }
    let held = app.state.cache.local_snapshot();
    assert_eq!(held.tier.hits, 1, "the second read came from the tier");
    assert_eq!(held.tracking_sessions_started, 1);

    // Redis restarts: its notices of the meantime are lost with the connection.
    redis.stop();
    redis.start();
    assert!(
        app.state
            .cache
            .redis()
            .wait_connected(std::time::Duration::from_secs(5))
            .await
    );
    for _ in 0..200 {
        let now = app.state.cache.local_snapshot();
        if now.tracking_sessions_started >= 2 && now.tracking_session != 0 {
            break;
        }
        // Commands make the connection notice it was lost and reconnect.
        let _ = app.state.cache.redis().ping().await;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let after = app.state.cache.local_snapshot();
    assert!(after.tracking_sessions_started >= 2, "{after:?}");
    assert_ne!(after.tracking_session, held.tracking_session);
    assert!(after.tier.flushes > held.tier.flushes);

    // What was read in the old session is not served from the tier; read again, it is.
    assert_eq!(app.get(popular).await.status(), 200);
    assert_eq!(app.state.cache.local_snapshot().tier.hits, held.tier.hits);
    assert_eq!(app.get(popular).await.status(), 200);
    assert_eq!(
        app.state.cache.local_snapshot().tier.hits,
        held.tier.hits + 1
    );
}

#[tokio::test]
async fn the_local_tier_follows_the_clock_refreshing_early_and_never_serving_past_freshness() {
    let (app, _other) = two_instances(100).await;
    let path = "/movies/7";
    let read = || async {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        tests::cache_status(&response)
    };
    read().await;
    let hits = || app.state.cache.local_snapshot().tier.hits;
    let held = hits();
    let status = read().await;
    assert!(status.starts_with("origin; hit"), "{status}");
    assert_eq!(hits(), held + 1, "served by the tier");
    let ttl: i64 = status
        .split("ttl=")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.trim().parse().ok())
        .expect("a hit's ttl");

    // Into the last tenth of its life: still served from the tier, and refreshed once in the
    // background.
    let refreshes = || {
        app.state
            .cache
            .stats()
            .snapshot(shared::cache_key::Family::Metadata)
            .refresh_computations
    };
    let before = refreshes();
    app.state.cache.clock().advance(ttl - ttl / 20);
    assert!(read().await.starts_with("origin; hit"));
    assert_eq!(hits(), held + 2);
    app.state.cache.settled().await;
    assert_eq!(refreshes(), before + 1, "one early refresh");

    // Past the refreshed value's freshness too: never served from the tier.
    app.state.cache.clock().advance(3 * 24 * 3600);
    let status = read().await;
    assert!(status.starts_with("origin; fwd="), "{status}");
    assert_eq!(hits(), held + 2, "an expired value is not served locally");
}

/// A user's recommendations are stored as picks (movie ids, scores, the movie explaining
/// each), not as their JSON: the entry in Redis is a few hundred bytes, and another instance,
/// with nothing in its tier, renders from it the very bytes and ETag the computing instance
/// answered, with each movie's title and genres as its own page gives them.
#[tokio::test]
async fn recommendations_are_stored_as_picks_and_rendered_byte_for_byte() {
    let (a, b) = two_instances(1000).await;
    let user = 7;
    let token = a.user_token(user);
    for query in ["", "?strategy=collaborative&n=50"] {
        let path = format!("/users/{user}/recommendations{query}");
        let first = a.get_as(&path, &token).await;
        assert_eq!(first.status(), 200);
        let etag = first.headers()["etag"].clone();
        let computed = first.bytes().await.unwrap();
        let second = b.get_as(&path, &token).await;
        assert_eq!(second.status(), 200);
        let status = second.headers()["cache-status"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(status.contains("hit"), "read from Redis: {status}");
        assert_eq!(second.headers()["etag"], etag, "{path}");
        assert_eq!(second.bytes().await.unwrap(), computed, "{path}");

        let list: shared::dto::Recommendations = serde_json::from_slice(&computed).unwrap();
        assert!(list.model_version.is_some() && !list.items.is_empty());
        for item in list.items.iter().take(3) {
            let movie: shared::dto::Movie = b
                .get(&format!("/movies/{}", item.movie_id))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!((&item.title, &item.genres), (&movie.title, &movie.genres));
        }

        let (n, strategy) = match query {
            "" => (10, shared::params::Strategy::Hybrid),
            _ => (50, shared::params::Strategy::Collaborative),
        };
        let key = a
            .state
            .cache
            .keys()
            .recommendations(shared::params::UserId(user), n, strategy);
        let raw: Vec<u8> = a
            .state
            .cache
            .redis()
            .query(redis::cmd("GET").arg(&key))
            .await
            .unwrap();
        let body = &raw[raw.iter().position(|b| *b == b'\n').unwrap() + 1..];
        assert!(
            origin::picks::Picks::decode(body).is_some(),
            "picks, not JSON: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert!(
            body.len() * 5 < computed.len(),
            "{} stored bytes for a {}-byte answer",
            body.len(),
            computed.len()
        );
    }
}
