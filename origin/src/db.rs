//! PostgreSQL: the source of truth. A small typed API over runtime-checked queries (no
//! build-time database needed), one method per question the service asks.
//!
//! Every question goes through the database's circuit breaker (`crate::breaker`): while
//! PostgreSQL is known to be down, a method answers `database_unavailable` at once instead of
//! waiting for a connection, and one background probe (`SELECT 1`) closes the breaker when
//! PostgreSQL answers again. The pool itself waits at most `DATABASE_TIMEOUT_MS` for a
//! connection, so the requests that find out PostgreSQL went away are bounded too.
//! Each question's time goes into the request's trace, if one is recorded (`crate::trace`).

use crate::breaker::{Breaker, BreakerConfig};
use crate::error::AppError;
use crate::settings::DatabaseSettings;
use crate::trace::Step;
use anyhow::Context;
use secrecy::ExposeSecret;
use shared::dto::{Genre, Movie, Profile};
use shared::params::{MovieId, Rating, UserId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::str::FromStr;

/// Advisory-lock id under which one instance at a time refreshes the materialized view.
const VIEW_REFRESH_LOCK: i64 = 0x6d6f_7669_6573; // "movies"

/// The database handle. Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    breaker: Breaker,
}

/// What a rating write did.
#[derive(Debug, Clone, Copy)]
pub struct RateOutcome {
    /// An earlier rating of the movie was replaced.
    pub replaced: bool,
    /// The movie's rating count after the write.
    pub movie_rating_count: i64,
    /// The user's rating version after the write (one more for each of their ratings).
    pub rating_version: i64,
}

/// A user's activity, as far as caching and recommending need it.
#[derive(Debug, Clone, Copy)]
pub struct UserActivity {
    /// Number of ratings.
    pub rating_count: i64,
}

/// One of a user's ratings.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct UserRating {
    /// The movie.
    pub movie: i32,
    /// The rating.
    pub rating: f32,
    /// When it was made.
    pub rated_at: chrono::DateTime<chrono::Utc>,
}

/// A user's ratings as one snapshot sees them (see [`Db::ratings_since`]).
#[derive(Debug, Clone)]
pub struct RatingsSince {
    /// The user's number of ratings.
    pub rating_count: i64,
    /// The user's rating version: ratings stamped up to it are all in this snapshot.
    pub rating_version: i64,
    /// The sum of the user's ratings (for the profile's average).
    pub rating_sum: f64,
    /// When the user last rated.
    pub last_rated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The ratings written after the version asked for (all of them when none was given).
    pub ratings: Vec<UserRating>,
}

/// A movie as the in-memory catalogue keeps it (see `crate::model::Catalogue`).
#[derive(Debug, Clone)]
pub struct CatalogueMovie {
    /// The movie.
    pub id: i32,
    /// Its title.
    pub title: String,
    /// Its genres' names, ordered as every other movie answer orders them.
    pub genres: Vec<String>,
    /// Its genres' ids.
    pub genre_ids: Vec<i16>,
}

/// How much a user likes a genre, from their ratings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GenreAffinity {
    /// The genre.
    pub genre_id: i16,
    /// Its name.
    pub name: String,
    /// Sum over the user's ratings in the genre of how far above 2.5 they are (dislikes count 0).
    pub weight: f64,
}

const MOVIE_COLUMNS: &str = "m.id, m.title, m.year, m.rating_count, m.rating_sum, \
     COALESCE((SELECT array_agg(g.name ORDER BY g.name) FROM movie_genres mg \
               JOIN genres g ON g.id = mg.genre_id WHERE mg.movie_id = m.id), '{}') AS genres";

fn movie_from_row(row: &sqlx::postgres::PgRow) -> Result<Movie, sqlx::Error> {
    let count: i32 = row.try_get("rating_count")?;
    let sum: f64 = row.try_get("rating_sum")?;
    Ok(Movie {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        year: row.try_get("year")?,
        genres: row.try_get("genres")?,
        avg_rating: (count > 0).then(|| ((sum / count as f64) * 1000.0).round() / 1000.0),
        rating_count: count as i64,
    })
}

/// One `SELECT 1`, bounded by the pool's acquire timeout.
async fn probe(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

impl Db {
    /// Builds the pool without connecting: the service starts (and serves from the cache) even
    /// while PostgreSQL is down, and a request waits at most the configured timeout for it.
    pub fn connect_lazy(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        Self::connect_lazy_with(settings, BreakerConfig::default())
    }

    /// [`Db::connect_lazy`] with the circuit breaker's settings (`origin serve`).
    pub fn connect_lazy_with(
        settings: &DatabaseSettings,
        breaker: BreakerConfig,
    ) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(settings.database_url.expose_secret())
            .context("parsing DATABASE_URL")?
            .application_name("origin");
        let pool = PgPoolOptions::new()
            .max_connections(settings.database_max_connections)
            .min_connections(0)
            .acquire_timeout(settings.timeout())
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Db {
            pool,
            breaker: Breaker::new("postgres", breaker),
        })
    }

    /// Whether every connection the pool may open is open and checked out.
    fn saturated(&self) -> bool {
        self.pool.num_idle() == 0 && self.pool.size() >= self.pool.options().get_max_connections()
    }

    /// The circuit breaker in front of every query.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs one question through the breaker: refused at once while it is open; a failure to
    /// reach PostgreSQL counts towards opening it, any answer (rows, or an error PostgreSQL
    /// gave) closes the run of failures. The request that opens it starts the probe.
    async fn guarded<T>(
        &self,
        query: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        let started = crate::trace::stamp();
        if !self.breaker.allows() {
            crate::trace::record(Step::PostgresRefused, started);
            return Err(AppError::database_unavailable());
        }
        let result = query.await;
        crate::trace::record(
            match &result {
                Ok(_) => Step::Postgres,
                Err(err) if err.is_unavailable() => Step::PostgresUnavailable,
                Err(_) => Step::PostgresFailed,
            },
            started,
        );
        match &result {
            // Every connection checked out and alive: PostgreSQL is answering and this request
            // only waited for a turn (overload, not an outage), which must not open the breaker.
            Err(err) if err.is_unavailable() && self.saturated() => {}
            Err(err) if err.is_unavailable() => {
                if self.breaker.failed() {
                    let (pool, breaker) = (self.pool.clone(), self.breaker.clone());
                    tokio::spawn(async move {
                        breaker.probe_until_closed(|| probe(&pool)).await;
                    });
                }
            }
            _ => self.breaker.succeeded(),
        }
        result
    }

    /// The pool, for the importer and migrations.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .context("running migrations")?;
        Ok(())
    }

    /// Whether PostgreSQL answers; `false` at once while the breaker is open.
    pub async fn ping(&self) -> bool {
        self.breaker.allows() && probe(&self.pool).await
    }

    /// One movie.
    pub async fn movie(&self, id: MovieId) -> Result<Option<Movie>, AppError> {
        self.guarded(async move {
            let sql = format!("SELECT {MOVIE_COLUMNS} FROM movies m WHERE m.id = $1");
            let row = sqlx::query(&sql)
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.as_ref().map(movie_from_row).transpose()?)
        })
        .await
    }

    /// Movies by id, in the order given (unknown ids are skipped).
    pub async fn movies(&self, ids: &[i32]) -> Result<Vec<Movie>, AppError> {
        self.guarded(async move {
            let sql = format!("SELECT {MOVIE_COLUMNS} FROM movies m WHERE m.id = ANY($1)");
            let rows = sqlx::query(&sql).bind(ids).fetch_all(&self.pool).await?;
            let mut by_id: HashMap<i32, Movie> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let movie = movie_from_row(row)?;
                by_id.insert(movie.id, movie);
            }
            Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
        })
        .await
    }

    /// The most rated movies.
    pub async fn popular(&self, limit: i64) -> Result<Vec<Movie>, AppError> {
        self.guarded(async move {
            let sql = format!(
                "SELECT {MOVIE_COLUMNS} FROM movies m ORDER BY m.rating_count DESC, m.id LIMIT $1"
            );
            let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
            Ok(rows.iter().map(movie_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The most rated movies that `user` has not rated.
    pub async fn popular_unseen(&self, user: UserId, limit: i64) -> Result<Vec<Movie>, AppError> {
        self.guarded(async move {
            let sql = format!(
                "SELECT {MOVIE_COLUMNS} FROM movies m \
             WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = $1 AND r.movie_id = m.id) \
             ORDER BY m.rating_count DESC, m.id LIMIT $2"
            );
            let rows = sqlx::query(&sql)
                .bind(user.0)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.iter().map(movie_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Every genre, alphabetically.
    pub async fn genres(&self) -> Result<Vec<Genre>, AppError> {
        self.guarded(async move {
            let rows = sqlx::query("SELECT id, name, slug FROM genres ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    Ok(Genre {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        slug: r.try_get("slug")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?)
        })
        .await
    }

    /// The best-rated movies of a genre (more than 50 ratings), from the materialized view.
    pub async fn genre_top(&self, genre_id: i16, limit: i64) -> Result<Vec<Movie>, AppError> {
        self.guarded(async move {
        let sql = format!(
            "SELECT {MOVIE_COLUMNS} FROM top_movies_by_genre t JOIN movies m ON m.id = t.movie_id \
             WHERE t.genre_id = $1 ORDER BY t.rank LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(genre_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(movie_from_row).collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Top movies of the given genres from the view that `user` has not rated, with the genre
    /// they were found under and their average rating.
    pub async fn genre_candidates(
        &self,
        user: UserId,
        genre_ids: &[i16],
        per_genre: i64,
    ) -> Result<Vec<(i16, i32, f64)>, AppError> {
        self.guarded(async move {
        let rows = sqlx::query(
            "SELECT t.genre_id, t.movie_id, t.avg_rating FROM top_movies_by_genre t \
             WHERE t.genre_id = ANY($1) AND t.rank <= $3 \
               AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = $2 AND r.movie_id = t.movie_id)",
        )
        .bind(genre_ids)
        .bind(user.0)
        .bind(per_genre)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("genre_id")?,
                    r.try_get("movie_id")?,
                    r.try_get("avg_rating")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?)
        })
        .await
    }

    /// A user's activity, or `None` for an unknown user.
    pub async fn user_activity(&self, user: UserId) -> Result<Option<UserActivity>, AppError> {
        self.guarded(async move {
            let row = sqlx::query("SELECT rating_count FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| UserActivity {
                rating_count: r.get::<i32, _>(0) as i64,
            }))
        })
        .await
    }

    /// The user's rating version (bumped by every rating, see [`Db::rate`]); 404 for an
    /// unknown user.
    pub async fn rating_version(&self, user: UserId) -> Result<i64, AppError> {
        self.guarded(async move {
            let version: Option<i64> =
                sqlx::query_scalar("SELECT rating_version FROM users WHERE id = $1")
                    .bind(user.0)
                    .fetch_optional(&self.pool)
                    .await?;
            version.ok_or_else(|| {
                AppError::not_found("user_not_found", format!("user {} does not exist", user.0))
            })
        })
        .await
    }

    /// Records that `user`'s cached values must be invalidated and Redis has not acknowledged
    /// it (see the migration `cache_invalidations`); a later record of the same user moves its
    /// time on, so a delivery of the earlier one does not delete it.
    pub async fn record_invalidation(&self, user: UserId) -> Result<(), AppError> {
        self.guarded(async move {
            sqlx::query(
                "INSERT INTO cache_invalidations (user_id) VALUES ($1) \
                 ON CONFLICT (user_id) DO UPDATE SET recorded_at = clock_timestamp()",
            )
            .bind(user.0)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// The recorded invalidations (at most `limit`), each with the time it was recorded.
    pub async fn recorded_invalidations(
        &self,
        limit: i64,
    ) -> Result<Vec<(UserId, chrono::DateTime<chrono::Utc>)>, AppError> {
        self.guarded(async move {
            let rows: Vec<(i32, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                "SELECT user_id, recorded_at FROM cache_invalidations ORDER BY recorded_at LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(user, at)| (UserId(user), at)).collect())
        })
        .await
    }

    /// Deletes the recorded invalidations delivered: each row only as it was read (a user
    /// recorded again since keeps theirs).
    pub async fn delete_invalidations(
        &self,
        delivered: &[(UserId, chrono::DateTime<chrono::Utc>)],
    ) -> Result<(), AppError> {
        let users: Vec<i32> = delivered.iter().map(|(user, _)| user.0).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> =
            delivered.iter().map(|(_, at)| *at).collect();
        self.guarded(async move {
            sqlx::query(
                "DELETE FROM cache_invalidations c \
                 USING unnest($1::integer[], $2::timestamptz[]) AS d(user_id, recorded_at) \
                 WHERE c.user_id = d.user_id AND c.recorded_at = d.recorded_at",
            )
            .bind(users)
            .bind(times)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// In one statement (so one snapshot): the user's row, and their ratings written after
    /// rating version `since`, or all of them when `since` is `None`. `None` for an unknown
    /// user.
    ///
    /// Each rating is stamped with the user's rating version of the write that made it (see
    /// [`Db::rate`]), and a snapshot holds every rating stamped up to the user's version it
    /// shows: so the ratings after `since` are exactly what changed between a state read at
    /// `since` and this snapshot. Only ratings written by [`Db::rate`] carry a version (imported
    /// ones are 0), and the partial index `ratings_user_version` holds just those, so a delta
    /// reads the few new rows, never the user's whole history.
    pub async fn ratings_since(
        &self,
        user: UserId,
        since: Option<i64>,
    ) -> Result<Option<RatingsSince>, AppError> {
        self.guarded(async move {
        const ALL: &str = "SELECT u.rating_count, u.rating_version, r.movie_id, r.rating, r.rated_at, \
             u.rating_sum, u.last_rated_at FROM users u LEFT JOIN ratings r ON r.user_id = u.id WHERE u.id = $1";
        // `version > 0` is implied by `version > $2` (a state's version is never negative) and
        // lets the planner use the partial index with any value of $2.
        const SINCE: &str = "SELECT u.rating_count, u.rating_version, r.movie_id, r.rating, r.rated_at, \
             u.rating_sum, u.last_rated_at FROM users u LEFT JOIN ratings r \
               ON r.user_id = u.id AND r.version > $2 AND r.version > 0 \
             WHERE u.id = $1";
        let rows = match since {
            None => sqlx::query(ALL).bind(user.0).fetch_all(&self.pool).await?,
            Some(version) => {
                sqlx::query(SINCE)
                    .bind(user.0)
                    .bind(version.max(0))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut read = RatingsSince {
            rating_count: first.try_get::<i32, _>(0)? as i64,
            rating_version: first.try_get(1)?,
            rating_sum: first.try_get(5)?,
            last_rated_at: first.try_get(6)?,
            ratings: Vec::with_capacity(rows.len()),
        };
        // A user without (new) ratings is one row of NULLs on the ratings side.
        for row in &rows {
            if let Some(movie) = row.try_get::<Option<i32>, _>(2)? {
                read.ratings.push(UserRating {
                    movie,
                    rating: row.try_get(3)?,
                    rated_at: row.try_get(4)?,
                });
            }
        }
        Ok(Some(read))
        })
        .await
    }

    /// Every movie with its title and genres, and the data set's epoch they belong to, read
    /// in one snapshot (a read-only repeatable-read transaction).
    pub async fn catalogue(&self) -> Result<(u64, Vec<CatalogueMovie>), AppError> {
        self.guarded(async move {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let epoch: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM dataset_epoch WHERE singleton")
                .fetch_optional(&mut *tx)
                .await?;
        let rows = sqlx::query(
            "SELECT m.id, m.title, \
                    COALESCE((SELECT array_agg(g.name ORDER BY g.name) FROM movie_genres mg \
                              JOIN genres g ON g.id = mg.genre_id WHERE mg.movie_id = m.id), '{}') AS genres, \
                    COALESCE((SELECT array_agg(mg.genre_id) FROM movie_genres mg \
                              WHERE mg.movie_id = m.id), '{}') AS genre_ids \
             FROM movies m",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let movies = rows
            .iter()
            .map(|r| {
                Ok(CatalogueMovie {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                    genres: r.try_get("genres")?,
                    genre_ids: r.try_get("genre_ids")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((epoch.map_or(0, |e| e as u64), movies))
        })
        .await
    }

    /// How much the user likes each genre they rated, most liked first.
    pub async fn genre_affinities(&self, user: UserId) -> Result<Vec<GenreAffinity>, AppError> {
        self.guarded(async move {
        Ok(sqlx::query_as(
            "SELECT g.id AS genre_id, g.name, SUM(GREATEST(r.rating - 2.5, 0))::DOUBLE PRECISION AS weight \
             FROM ratings r JOIN movie_genres mg ON mg.movie_id = r.movie_id \
             JOIN genres g ON g.id = mg.genre_id \
             WHERE r.user_id = $1 GROUP BY g.id, g.name ORDER BY weight DESC, COUNT(*) DESC, g.name",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?)
        })
        .await
    }

    /// A user's profile, or `None` for an unknown user.
    pub async fn profile(&self, user: UserId) -> Result<Option<Profile>, AppError> {
        self.guarded(async move {
            let Some(row) = sqlx::query(
                "SELECT rating_count, rating_sum, last_rated_at FROM users WHERE id = $1",
            )
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let count = row.try_get::<i32, _>(0)? as i64;
            let sum: f64 = row.try_get(1)?;
            let last: Option<chrono::DateTime<chrono::Utc>> = row.try_get(2)?;
            let favourite_genres = self
                .genre_affinities(user)
                .await?
                .into_iter()
                .filter(|a| a.weight > 0.0)
                .take(3)
                .map(|a| a.name)
                .collect();
            Ok(Some(Profile {
                user_id: user.0,
                rating_count: count,
                avg_rating: (count > 0).then(|| ((sum / count as f64) * 1000.0).round() / 1000.0),
                favourite_genres,
                last_activity: last.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            }))
        })
        .await
    }

    /// Records a rating (or replaces the user's earlier rating of the movie) and keeps the
    /// movie's and the user's counters in step, in one transaction. Returns only once
    /// committed. Locking the user's row first serialises one user's writes, so the replaced
    /// value read below is exact.
    ///
    /// The lock is taken by incrementing the user's `rating_version`, and the rating row is
    /// stamped with the new value: one user's versions are thus in commit order, and a
    /// snapshot that shows version `V` shows every rating stamped up to `V` (what
    /// [`Db::ratings_since`] relies on).
    pub async fn rate(
        &self,
        user: UserId,
        movie: MovieId,
        rating: Rating,
    ) -> Result<RateOutcome, AppError> {
        self.guarded(async move {
        let mut tx = self.pool.begin().await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET rating_version = rating_version + 1 WHERE id = $1 \
             RETURNING rating_version",
        )
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version else {
            return Err(AppError::not_found(
                "user_not_found",
                format!("user {} does not exist", user.0),
            ));
        };
        let old: Option<f32> =
            sqlx::query_scalar("SELECT rating FROM ratings WHERE user_id = $1 AND movie_id = $2")
                .bind(user.0)
                .bind(movie.0)
                .fetch_optional(&mut *tx)
                .await?;
        let (count_delta, sum_delta) = match old {
            Some(old) => (0i32, (rating.get() - old) as f64),
            None => (1i32, rating.get() as f64),
        };
        let movie_count: Option<i32> = sqlx::query_scalar(
            "UPDATE movies SET rating_count = rating_count + $2, rating_sum = rating_sum + $3 \
             WHERE id = $1 RETURNING rating_count",
        )
        .bind(movie.0)
        .bind(count_delta)
        .bind(sum_delta)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(movie_count) = movie_count else {
            return Err(AppError::not_found(
                "movie_not_found",
                format!("movie {} does not exist", movie.0),
            ));
        };
        sqlx::query(
            "INSERT INTO ratings (user_id, movie_id, rating, rated_at, version) \
             VALUES ($1, $2, $3, now(), $4) \
             ON CONFLICT (user_id, movie_id) DO UPDATE \
             SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at, version = EXCLUDED.version",
        )
        .bind(user.0)
        .bind(movie.0)
        .bind(rating.get())
        .bind(version)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET rating_count = rating_count + $2, rating_sum = rating_sum + $3, \
             last_rated_at = now() WHERE id = $1",
        )
        .bind(user.0)
        .bind(count_delta)
        .bind(sum_delta)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RateOutcome {
            replaced: old.is_some(),
            movie_rating_count: movie_count as i64,
            rating_version: version,
        })
        })
        .await
    }

    /// The genre ids of a movie.
    pub async fn movie_genre_ids(&self, movie: MovieId) -> Result<Vec<i16>, AppError> {
        self.guarded(async move {
            Ok(
                sqlx::query_scalar("SELECT genre_id FROM movie_genres WHERE movie_id = $1")
                    .bind(movie.0)
                    .fetch_all(&self.pool)
                    .await?,
            )
        })
        .await
    }

    /// The data set's epoch (0 before any import recorded one).
    pub async fn dataset_epoch(&self) -> Result<u64, AppError> {
        self.guarded(async move {
            let epoch: Option<i64> =
                sqlx::query_scalar("SELECT epoch FROM dataset_epoch WHERE singleton")
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(epoch.map_or(0, |e| e as u64))
        })
        .await
    }

    /// The smallest rating count among the most active 20% of users (0 with no users).
    pub async fn power_user_threshold(&self) -> Result<i64, AppError> {
        self.guarded(async move {
            let share = shared::ttl::POWER_USER_SHARE;
            let threshold: Option<i32> = sqlx::query_scalar(
                "SELECT percentile_disc($1) WITHIN GROUP (ORDER BY rating_count) FROM users",
            )
            .bind(1.0 - share)
            .fetch_one(&self.pool)
            .await?;
            Ok(threshold.unwrap_or(0).max(1) as i64)
        })
        .await
    }

    /// The most active users (power users first), at most `limit`.
    pub async fn power_users(&self, threshold: i64, limit: i64) -> Result<Vec<UserId>, AppError> {
        self.guarded(async move {
            let ids: Vec<i32> = sqlx::query_scalar(
            "SELECT id FROM users WHERE rating_count >= $1 ORDER BY rating_count DESC, id LIMIT $2",
        )
        .bind(threshold as i32)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
            Ok(ids.into_iter().map(UserId).collect())
        })
        .await
    }

    /// The most rated movies, at most `limit`.
    pub async fn most_rated_movies(&self, limit: i64) -> Result<Vec<MovieId>, AppError> {
        self.guarded(async move {
            let ids: Vec<i32> =
                sqlx::query_scalar("SELECT id FROM movies ORDER BY rating_count DESC, id LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(ids.into_iter().map(MovieId).collect())
        })
        .await
    }

    /// Refreshes the top-by-genre view without blocking readers. Returns `false` when another
    /// instance holds the refresh lock (it is refreshing right now).
    pub async fn refresh_top_by_genre(&self) -> Result<bool, AppError> {
        self.guarded(async move {
            let mut conn = self.pool.acquire().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(VIEW_REFRESH_LOCK)
                .fetch_one(&mut *conn)
                .await?;
            if !locked {
                return Ok(false);
            }
            let refreshed =
                sqlx::query("REFRESH MATERIALIZED VIEW CONCURRENTLY top_movies_by_genre")
                    .execute(&mut *conn)
                    .await;
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(VIEW_REFRESH_LOCK)
                .execute(&mut *conn)
                .await;
            refreshed?;
            Ok(true)
        })
        .await
    }
}

/// The log of invalidations Redis did not acknowledge is `cache_invalidations`.
impl crate::cache::InvalidationLog for Db {
    fn record(&self, user: UserId) -> futures::future::BoxFuture<'_, Result<(), AppError>> {
        Box::pin(self.record_invalidation(user))
    }

    fn recorded(
        &self,
        limit: i64,
    ) -> futures::future::BoxFuture<'_, Result<Vec<(UserId, crate::cache::RecordedAt)>, AppError>>
    {
        Box::pin(self.recorded_invalidations(limit))
    }

    fn delete<'a>(
        &'a self,
        delivered: &'a [(UserId, crate::cache::RecordedAt)],
    ) -> futures::future::BoxFuture<'a, Result<(), AppError>> {
        Box::pin(self.delete_invalidations(delivered))
    }
}
