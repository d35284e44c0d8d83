//! Two origin instances behind one edge (`ORIGIN_URL` listing both), sharing one database and
//! one Redis namespace, as `ORIGIN_INSTANCES=2 scripts/up.sh` runs them. Each instance sits
//! behind an [`InstanceFront`] that notes the requests reaching it and can take it away, so
//! the tests see where the edge sent each request without any change to the origin.

use shared::origins::{Affinity, Origins};
use shared::params::UserId;
use std::collections::BTreeSet;
use tests::edge::EdgeServer;
use tests::{InstanceFront, TestApp, fresh_database, redis_mode, redis_url, test_settings};

/// Two instances on one fresh database and one cache namespace (and one JWT secret, so a
/// token works on both), each behind a front, and an edge in front of both.
struct TwoInstances {
    apps: [TestApp; 2],
    fronts: [InstanceFront; 2],
    edge: EdgeServer,
    client: reqwest::Client,
}

impl TwoInstances {
    async fn start() -> TwoInstances {
        let mode = redis_mode();
        let db = fresh_database().await;
        let first = test_settings(&db, mode, &redis_url(mode));
        let mut second = test_settings(&db, mode, &redis_url(mode));
        second.cache_namespace = first.cache_namespace.clone();
        second.jwt_secret = first.jwt_secret.clone();
        let apps = [
            TestApp::spawn_with(first).await,
            TestApp::spawn_with(second).await,
        ];
        let fronts = [
            InstanceFront::start(apps[0].addr).await,
            InstanceFront::start(apps[1].addr).await,
        ];
        let edge = EdgeServer::start(&format!("{},{}", fronts[0].url, fronts[1].url)).await;
        TwoInstances {
            apps,
            fronts,
            edge,
            client: reqwest::Client::new(),
        }
    }

    /// The edge's ranking policy over these two instances.
    fn origins(&self) -> Origins {
        Origins::parse(&format!("{},{}", self.fronts[0].url, self.fronts[1].url)).unwrap()
    }

    /// Which front (0 or 1) the policy asks first for a request to `path`.
    fn home(&self, path: &str, cache_key: Option<&str>) -> usize {
        let first = self.origins().ranked(&Affinity::of(path, cache_key))[0].to_owned();
        self.fronts.iter().position(|f| f.url == first).unwrap()
    }

    /// GET through the edge, with `user`'s token if given.
    async fn get(&self, path: &str, user: Option<i32>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.edge.url));
        if let Some(user) = user {
            request = request.bearer_auth(self.apps[0].user_token(user));
        }
        request.send().await.expect("request to the edge")
    }

    /// POST a rating through the edge, as the user.
    async fn rate(&self, user: i32, movie: i32, rating: f64) -> reqwest::Response {
        self.client
            .post(format!("{}/users/{user}/ratings", self.edge.url))
            .bearer_auth(self.apps[0].user_token(user))
            .json(&serde_json::json!({ "movie_id": movie, "rating": rating }))
            .send()
            .await
            .expect("request to the edge")
    }

    /// The fronts that relayed a request whose target starts with `prefix`, and how many
    /// such requests each relayed.
    fn reached(&self, prefix: &str) -> Vec<(usize, usize)> {
        (0..2)
            .filter_map(|i| {
                let n = self.fronts[i]
                    .requests()
                    .iter()
                    .filter(|r| r.split(' ').nth(1).is_some_and(|t| t.starts_with(prefix)))
                    .count();
                (n > 0).then_some((i, n))
            })
            .collect()
    }
}

#[tokio::test]
async fn edge_instances_keep_each_user_on_one_instance_and_spread_users_over_both() {
    let system = TwoInstances::start().await;
    let users: Vec<i32> = (1..=24).collect();
    let mut homes = BTreeSet::new();
    for &user in &users {
        let mut sent = 0;
        for path in ["profile", "recommendations", "recommendations?n=5"] {
            let response = system
                .get(&format!("/users/{user}/{path}"), Some(user))
                .await;
            assert_eq!(response.status(), 200, "/users/{user}/{path}");
            sent += 1;
        }
        // Writes go to the user's instance too.
        if user <= 4 {
            let rated = system.rate(user, 50, 4.0).await;
            assert!(rated.status().is_success(), "rating: {}", rated.status());
            let after = system
                .get(&format!("/users/{user}/recommendations"), Some(user))
                .await;
            assert_eq!(after.status(), 200);
            sent += 2;
        }
        let reached = system.reached(&format!("/users/{user}/"));
        let home = system.home(&format!("/users/{user}/profile"), None);
        assert_eq!(
            reached,
            [(home, sent)],
            "every request of user {user} reached instance {home} (the policy's choice), \
             each once"
        );
        homes.insert(home);
    }
    assert_eq!(
        homes,
        BTreeSet::from([0, 1]),
        "the users spread over both instances"
    );

    // Public reads spread by their normalised cache key; each is asked of one instance.
    let mut public_homes = BTreeSet::new();
    for id in 1..=16 {
        let response = system.get(&format!("/movies/{id}?utm=x"), None).await;
        assert_eq!(response.status(), 200);
        let home = system.home(&format!("/movies/{id}"), Some(&format!("/movies/{id}")));
        // The exact path: `/movies/1` must not count `/movies/10`.
        let exact: Vec<usize> = (0..2)
            .filter(|&i| {
                system.fronts[i]
                    .requests()
                    .contains(&format!("GET /movies/{id}"))
            })
            .collect();
        assert_eq!(exact, [home], "/movies/{id} was fetched from its instance");
        public_homes.insert(home);
    }
    assert_eq!(public_homes, BTreeSet::from([0, 1]));
}

#[tokio::test]
async fn edge_instances_answer_reads_from_the_survivor_when_one_instance_stops() {
    let system = TwoInstances::start().await;
    let (stopped, survivor) = (1, 0);
    // Users and movies whose first choice is the instance about to stop.
    let orphans: Vec<i32> = (1..=60)
        .filter(|u| system.home(&format!("/users/{u}/profile"), None) == stopped)
        .take(3)
        .collect();
    let movies: Vec<i32> = (1..=60)
        .filter(|m| {
            let key = format!("/movies/{m}");
            system.home(&key, Some(&key)) == stopped
        })
        .take(3)
        .collect();
    assert_eq!((orphans.len(), movies.len()), (3, 3));
    assert_eq!(
        system.origins().ranked(&Affinity::User(UserId(orphans[0])))[0],
        system.fronts[stopped].url
    );

    // The users' sessions start on their instance (the edge may keep its connections open)...
    for &user in &orphans {
        let response = system
            .get(&format!("/users/{user}/profile"), Some(user))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(system.reached(&format!("/users/{user}/")), [(stopped, 1)]);
    }
    // ...and then it goes away.
    system.fronts[stopped].stop().await;
    let ratings_before = system.apps[0].ratings_snapshot().await;

    for &user in &orphans {
        for path in ["profile", "recommendations"] {
            let response = system
                .get(&format!("/users/{user}/{path}"), Some(user))
                .await;
            assert_eq!(response.status(), 200, "/users/{user}/{path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body.is_object(), "{body}");
            assert!(
                system.fronts[survivor]
                    .requests()
                    .contains(&format!("GET /users/{user}/{path}")),
                "the survivor answered /users/{user}/{path}"
            );
        }
    }
    for &movie in &movies {
        let response = system.get(&format!("/movies/{movie}"), None).await;
        assert_eq!(response.status(), 200, "/movies/{movie}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["id"], movie, "{body}");
        assert!(
            system.fronts[survivor]
                .requests()
                .contains(&format!("GET /movies/{movie}")),
            "the survivor answered /movies/{movie}"
        );
    }
    for path in [
        "/movies/popular?limit=7",
        "/genres",
        "/genres/comedy/top?limit=3",
    ] {
        assert_eq!(system.get(path, None).await.status(), 200, "{path}");
    }

    // The reads above found the instance gone, so the edge ranks it last for a while: a
    // rating, which is never retried on another instance once sent (it might have been
    // written), now goes straight to the survivor and is recorded once.
    let user = orphans[0];
    let unrated: i32 = sqlx::query_scalar(
        "SELECT max(m.id) FROM movies m WHERE NOT EXISTS \
         (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id)",
    )
    .bind(user)
    .fetch_one(system.apps[0].db())
    .await
    .unwrap();
    let accepted = system.rate(user, unrated, 4.0).await;
    assert_eq!(accepted.status(), 201);
    assert_eq!(
        system.reached(&format!("/users/{user}/ratings")),
        [(survivor, 1)]
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ratings WHERE user_id = $1 AND movie_id = $2 AND rating = 4",
    )
    .bind(user)
    .bind(unrated)
    .fetch_one(system.apps[0].db())
    .await
    .unwrap();
    assert_eq!(stored, 1);
    assert_ne!(system.apps[0].ratings_snapshot().await, ratings_before);
}
