//! Loading a data set into PostgreSQL: the real MovieLens 100K files, or MovieLens-shaped
//! synthetic data of any size (up to the MovieLens 25M shape and beyond).
//!
//! Why it is built this way:
//!
//! - **Idempotent.** The `imports` table records which data set the database holds and a
//!   fingerprint of its content (sha256 of the MovieLens files; of the spec and generator
//!   version for synthetic data). Importing the same data again does nothing and reports the
//!   stored counts, so start-up scripts can call it unconditionally. Replacing *different*
//!   data (another data set, or rows that no import recorded) needs `replace`: data is never
//!   destroyed by accident.
//! - **All or nothing.** The whole load (truncate, copy, counters, materialized view, the
//!   `imports` row) is one transaction: a failed or interrupted import leaves the previous data
//!   in place. An advisory lock serialises concurrent imports.
//! - **Fast at scale.** Rows go through `COPY ... FROM STDIN` in the text format, produced on a
//!   blocking thread and streamed in chunks of a few MB (submodule `copy`); 25 million ratings
//!   are never held in memory. The foreign keys and secondary indexes of `ratings` are dropped
//!   for the load and recreated from the catalogue's own definitions before the commit (one
//!   validating join instead of two lookups per row: 1M ratings import in 4 s instead of 12).
//!   The denormalised counters (`movies.rating_count/rating_sum`,
//!   `users.rating_count/rating_sum/last_rated_at`) are then set with one aggregate `UPDATE`
//!   each, instead of per-row maintenance. The MovieLens 25M shape loads in about 100 s on two
//!   cores.
//! - **Observable.** Phases are logged with `tracing`, and an optional progress bar on stderr
//!   (only when it is a terminal) counts the ratings loaded.
//!
//! MovieLens data: F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and
//! Context", ACM TiiS 5(4):19, 2015; non-commercial use. `scripts/fetch-data.sh` downloads it.

mod copy;
pub mod edge_purge;
mod movielens;
mod synthetic;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sqlx::{PgConnection, PgPool};
use tracing::{info, warn};

/// The 19 MovieLens genres, in MovieLens' own order: genre ids are 1-based positions here, the
/// same for every data set.
const GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The key of the transaction-level advisory lock that serialises imports.
const LOCK_KEY: i64 = 0x6f72_6967_696e_0001; // "origin" + 1

/// What to import.
#[derive(Debug, Clone)]
pub enum Source {
    /// The MovieLens 100K files (`ml-100k.inter`, `ml-100k.item`, `ml-100k.user`, as
    /// `scripts/fetch-data.sh` stores them) in `dir`.
    MovieLens {
        /// The folder holding the three files (normally `data/ml-100k`).
        dir: PathBuf,
    },
    /// Deterministic MovieLens-shaped data.
    Synthetic(SyntheticSpec),
}

/// The size and seed of a synthetic data set.
///
/// A user cannot rate a movie twice, so at most `users × movies` ratings exist: a spec asking
/// for more is generated with exactly `users × movies` (the report gives the real count).
#[derive(Debug, Clone, Copy)]
pub struct SyntheticSpec {
    /// Users, ids `1..=users`.
    pub users: u32,
    /// Movies, ids `1..=movies`.
    pub movies: u32,
    /// Ratings in total (see above for the upper bound).
    pub ratings: u64,
    /// The seed: the same spec always gives the same data.
    pub seed: u64,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// `movielens-100k` or `synthetic-{users}u-{movies}m-{ratings}r-seed{seed}`.
    pub dataset: String,
    /// True when the database already held exactly this data set and nothing was done.
    pub skipped: bool,
    /// Movies loaded (or recorded, when skipped).
    pub movies: i64,
    /// Users loaded (or recorded, when skipped).
    pub users: i64,
    /// Ratings loaded (or recorded, when skipped).
    pub ratings: i64,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
}

/// The data, read and validated, ready to load.
enum Prepared {
    MovieLens(Arc<movielens::Data>),
    Synthetic(Box<synthetic::Generator>),
}

impl Prepared {
    fn total_ratings(&self) -> u64 {
        match self {
            Prepared::MovieLens(data) => data.ratings.len() as u64,
            Prepared::Synthetic(generator) => generator.total_ratings(),
        }
    }
}

/// Imports `source` into the database behind `pool` (the schema must be migrated).
///
/// - If the `imports` table records this very data set (same name and fingerprint), nothing is
///   touched and the report has `skipped: true` with the recorded counts.
/// - If the database holds anything else (another data set, or movies, users or ratings that
///   no import recorded), it fails unless `replace` is true.
/// - Otherwise, in one transaction: empties `ratings`, `movie_genres`, `movies`, `users`,
///   `genres` and `imports`; copies the new rows in with `COPY`; sets the rating counters of
///   movies and users; refreshes `top_movies_by_genre`; records the import. Then `ANALYZE`s.
///
/// `progress` shows a progress bar over the ratings on stderr when it is a terminal.
pub async fn import(
    pool: &PgPool,
    source: &Source,
    replace: bool,
    progress: bool,
) -> Result<ImportReport> {
    let started = Instant::now();
    let bar = progress_bar(progress);

    bar.set_message("reading the data set");
    let (dataset, fingerprint, prepared) = match source {
        Source::MovieLens { dir } => {
            info!(dir = %dir.display(), "import: reading MovieLens 100K");
            let data = movielens::load(dir).await?;
            let fingerprint = data.fingerprint.clone();
            (
                movielens::DATASET.to_owned(),
                fingerprint,
                Prepared::MovieLens(Arc::new(data)),
            )
        }
        Source::Synthetic(spec) => {
            synthetic::validate(spec)?;
            let generator = synthetic::Generator::new(spec);
            if generator.total_ratings() < spec.ratings {
                warn!(
                    requested = spec.ratings,
                    generated = generator.total_ratings(),
                    "import: more ratings requested than users × movies; every user rates every movie"
                );
            }
            (
                synthetic::dataset_name(spec),
                synthetic::fingerprint(spec),
                Prepared::Synthetic(Box::new(generator)),
            )
        }
    };
    let dataset = dataset.as_str();

    let mut tx = pool
        .begin()
        .await
        .context("starting the import transaction")?;
    bar.set_message("waiting for other imports");
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await
        .context("taking the import lock")?;

    bar.set_message("checking the database");
    info!(dataset, "import: checking what the database holds");
    let recorded: Vec<(String, String, i32, i32, i64, String)> = sqlx::query_as(
        "SELECT dataset, fingerprint, movies, users, ratings, \
                to_char(imported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"') \
         FROM imports ORDER BY imported_at, dataset",
    )
    .fetch_all(&mut *tx)
    .await
    .context("reading the imports table")?;
    if let [(name, print, movies, users, ratings, _)] = recorded.as_slice()
        && name == dataset
        && *print == fingerprint
    {
        tx.rollback()
            .await
            .context("ending the check transaction")?;
        bar.finish_and_clear();
        info!(
            dataset,
            "import: the database already holds this data set; skipped"
        );
        return Ok(ImportReport {
            dataset: dataset.to_owned(),
            skipped: true,
            movies: i64::from(*movies),
            users: i64::from(*users),
            ratings: *ratings,
            elapsed: started.elapsed(),
        });
    }
    let (has_movies, has_users, has_ratings): (bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM movies), EXISTS (SELECT 1 FROM users), \
                EXISTS (SELECT 1 FROM ratings)",
    )
    .fetch_one(&mut *tx)
    .await
    .context("checking for existing data")?;
    if !replace && (!recorded.is_empty() || has_movies || has_users || has_ratings) {
        let held = match recorded.first() {
            Some((name, print, movies, users, ratings, at)) => {
                let what = if name == dataset {
                    format!(
                        "data set `{name}` from different source data (fingerprint {} here, \
                         {} now)",
                        &print[..print.len().min(12)],
                        &fingerprint[..12]
                    )
                } else {
                    format!("data set `{name}`")
                };
                format!("{what}: {movies} movies, {users} users, {ratings} ratings, imported {at}")
            }
            None => "movies, users or ratings that no import recorded".to_owned(),
        };
        bail!(
            "the database already holds {held}; pass --replace to replace everything with \
             `{dataset}`"
        );
    }

    let total = prepared.total_ratings();
    bar.set_length(total);
    let (movies, users, ratings) = load(&mut tx, prepared, &bar, dataset).await?;

    // A new epoch: every instance stops serving what it cached of the previous data (see
    // `origin::dataset`) once it reads this, committed with the data itself.
    sqlx::query(
        "INSERT INTO dataset_epoch (singleton, epoch) VALUES (true, $1) \
         ON CONFLICT (singleton) DO UPDATE SET epoch = EXCLUDED.epoch, changed_at = now()",
    )
    .bind(rand::random::<i64>())
    .execute(&mut *tx)
    .await
    .context("recording the data set's epoch")?;
    sqlx::query(
        "INSERT INTO imports (dataset, fingerprint, movies, users, ratings) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(dataset)
    .bind(&fingerprint)
    .bind(i32::try_from(movies).context("too many movies")?)
    .bind(i32::try_from(users).context("too many users")?)
    .bind(ratings)
    .execute(&mut *tx)
    .await
    .context("recording the import")?;

    bar.set_message("committing");
    info!(dataset, "import: committing");
    tx.commit().await.context("committing the import")?;

    // Fresh statistics for the planner. The data is committed: a failure here is not a failed
    // import (autovacuum catches up), so it is only reported.
    bar.set_message("analyzing");
    info!(dataset, "import: analyzing");
    for statement in [
        "VACUUM (ANALYZE) movies, users",
        "ANALYZE genres, movie_genres, ratings, top_movies_by_genre, imports",
    ] {
        if let Err(e) = sqlx::query(statement).execute(pool).await {
            warn!(error = %e, statement, "import: statistics not refreshed");
        }
    }

    bar.finish_and_clear();
    let elapsed = started.elapsed();
    info!(
        dataset,
        movies,
        users,
        ratings,
        elapsed_ms = elapsed.as_millis() as u64,
        "import: done"
    );
    Ok(ImportReport {
        dataset: dataset.to_owned(),
        skipped: false,
        movies,
        users,
        ratings,
        elapsed,
    })
}

/// Replaces the catalogue, users and ratings with `prepared`, inside the caller's transaction.
/// Returns the movies, users and ratings stored.
async fn load(
    conn: &mut PgConnection,
    prepared: Prepared,
    bar: &ProgressBar,
    dataset: &str,
) -> Result<(i64, i64, i64)> {
    let phase = |message: &'static str| {
        bar.set_message(message);
        info!(dataset, "import: {message}");
    };

    // Room for the hash aggregates and the index builds of a large load.
    for setting in [
        "SET LOCAL work_mem = '256MB'",
        "SET LOCAL maintenance_work_mem = '256MB'",
    ] {
        sqlx::query(setting)
            .execute(&mut *conn)
            .await
            .context("tuning the import session")?;
    }

    phase("emptying the tables");
    // Models go too: one trained on other data would score the wrong movies.
    sqlx::query("TRUNCATE ratings, movie_genres, movies, users, genres, imports, models")
        .execute(&mut *conn)
        .await
        .context("emptying the tables")?;

    let (genres, movies_done, users_done, ratings_done);
    match prepared {
        Prepared::MovieLens(data) => {
            phase("loading genres");
            genres = copy_genres(conn, data.genres.clone()).await?;

            phase("loading movies");
            let d = Arc::clone(&data);
            movies_done = copy::copy_in(conn, "movies", COPY_MOVIES, None, move |sink| {
                for m in &d.movies {
                    sink.int(m.id.into()).text(&m.title);
                    match m.year {
                        Some(y) => sink.int(y.into()),
                        None => sink.null(),
                    };
                    sink.end_row()?;
                }
                Ok(())
            })
            .await?;
            let d = Arc::clone(&data);
            copy::copy_in(conn, "movie genres", COPY_MOVIE_GENRES, None, move |sink| {
                for m in &d.movies {
                    for &g in &m.genres {
                        sink.int(m.id.into()).int(g as i64 + 1);
                        sink.end_row()?;
                    }
                }
                Ok(())
            })
            .await?;

            phase("loading users");
            let d = Arc::clone(&data);
            users_done = copy::copy_in(conn, "users", COPY_USERS, None, move |sink| {
                for &u in &d.users {
                    sink.int(u.into());
                    sink.end_row()?;
                }
                Ok(())
            })
            .await?;

            phase("loading ratings");
            let restore = defer_ratings_checks(conn).await?;
            let d = Arc::clone(&data);
            ratings_done = copy::copy_in(conn, "ratings", COPY_RATINGS, Some(bar), move |sink| {
                for r in &d.ratings {
                    sink.int(r.user.into())
                        .int(r.movie.into())
                        .half_stars(r.half_stars);
                    sink.unix_time(r.at)?;
                    sink.end_row()?;
                }
                Ok(())
            })
            .await?;
            restore_ratings_checks(conn, restore, bar).await?;
        }
        Prepared::Synthetic(mut generator) => {
            phase("loading genres");
            genres = copy_genres(conn, GENRES.iter().map(|g| (*g).to_owned()).collect()).await?;

            phase("loading movies");
            let catalogue = generator.movies();
            movies_done = copy::copy_in(conn, "movies", COPY_MOVIES, None, move |sink| {
                for m in catalogue.iter() {
                    sink.int(m.id.into()).text(&m.title()).int(m.year.into());
                    sink.end_row()?;
                }
                Ok(())
            })
            .await?;
            let catalogue = generator.movies();
            copy::copy_in(conn, "movie genres", COPY_MOVIE_GENRES, None, move |sink| {
                for m in catalogue.iter() {
                    for &g in &m.genres {
                        sink.int(m.id.into()).int(i64::from(g) + 1);
                        sink.end_row()?;
                    }
                }
                Ok(())
            })
            .await?;

            phase("loading users");
            let users = generator.users();
            users_done = copy::copy_in(conn, "users", COPY_USERS, None, move |sink| {
                for u in 1..=users {
                    sink.int(u.into());
                    sink.end_row()?;
                }
                Ok(())
            })
            .await?;

            phase("generating and loading ratings");
            let restore = defer_ratings_checks(conn).await?;
            ratings_done = copy::copy_in(conn, "ratings", COPY_RATINGS, Some(bar), move |sink| {
                while let Some(rows) = generator.next_user() {
                    for r in rows {
                        sink.int(r.user.into())
                            .int(r.movie.into())
                            .half_stars(r.half_stars);
                        sink.unix_time(r.at)?;
                        sink.end_row()?;
                    }
                }
                Ok(())
            })
            .await?;
            restore_ratings_checks(conn, restore, bar).await?;
        }
    }
    info!(
        dataset,
        genres,
        movies = movies_done,
        users = users_done,
        ratings = ratings_done,
        "import: rows copied"
    );

    // Statistics of the fresh rows (visible to ANALYZE inside the transaction), so that the
    // aggregates below get sensible plans.
    phase("analyzing the new rows");
    sqlx::query("ANALYZE movies, users, ratings, movie_genres")
        .execute(&mut *conn)
        .await
        .context("analyzing the new rows")?;

    phase("updating movie counters");
    sqlx::query(
        "UPDATE movies AS m SET rating_count = a.n, rating_sum = a.s \
         FROM (SELECT movie_id, count(*)::integer AS n, sum(rating::double precision) AS s \
               FROM ratings GROUP BY movie_id) AS a \
         WHERE m.id = a.movie_id",
    )
    .execute(&mut *conn)
    .await
    .context("updating the movie counters")?;

    phase("updating user counters");
    sqlx::query(
        "UPDATE users AS u SET rating_count = a.n, rating_sum = a.s, last_rated_at = a.last \
         FROM (SELECT user_id, count(*)::integer AS n, sum(rating::double precision) AS s, \
                      max(rated_at) AS last \
               FROM ratings GROUP BY user_id) AS a \
         WHERE u.id = a.user_id",
    )
    .execute(&mut *conn)
    .await
    .context("updating the user counters")?;

    phase("refreshing top_movies_by_genre");
    sqlx::query("REFRESH MATERIALIZED VIEW top_movies_by_genre")
        .execute(&mut *conn)
        .await
        .context("refreshing top_movies_by_genre")?;

    Ok((movies_done as i64, users_done as i64, ratings_done as i64))
}

/// Drops the foreign keys and the secondary indexes of `ratings` (not its primary key) for
/// the bulk load, and returns the statements that restore them exactly as they were.
///
/// Checked per row, the two foreign keys cost more than everything else in a large `COPY`
/// (about 10 µs a row: over four minutes for 25M ratings); validated once afterwards, they
/// cost one join. A secondary index is likewise cheaper to build once than to grow row by row.
/// Everything happens inside the import transaction, which holds `ratings` exclusively since
/// the `TRUNCATE`: nobody sees the table without them, a failure rolls the drops back, and
/// the definitions come from the catalogue, so the schema the migrations made is what stays.
async fn defer_ratings_checks(conn: &mut PgConnection) -> Result<Vec<String>> {
    let deferred: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('ALTER TABLE ratings DROP CONSTRAINT %I', conname), \
                format('ALTER TABLE ratings ADD CONSTRAINT %I %s', conname, \
                       pg_get_constraintdef(oid)) \
         FROM pg_constraint \
         WHERE conrelid = 'ratings'::regclass AND contype = 'f' \
         UNION ALL \
         SELECT format('DROP INDEX %s', x.indexrelid::regclass), pg_get_indexdef(x.indexrelid) \
         FROM pg_index x \
         WHERE x.indrelid = 'ratings'::regclass \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                           WHERE c.conrelid = x.indrelid AND c.conindid = x.indexrelid)",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading the constraints and indexes of ratings")?;
    let mut restore = Vec::with_capacity(deferred.len());
    for (drop, create) in deferred {
        sqlx::query(&drop)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("deferring ratings checks: {drop}"))?;
        restore.push(create);
    }
    // Indexes first (the foreign keys' validation does not need them, but queries after it do).
    restore.sort_by_key(|s| s.starts_with("ALTER TABLE"));
    Ok(restore)
}

/// Runs the statements of [`defer_ratings_checks`]: rebuilds the indexes, then adds and
/// validates the foreign keys.
async fn restore_ratings_checks(
    conn: &mut PgConnection,
    restore: Vec<String>,
    bar: &ProgressBar,
) -> Result<()> {
    bar.set_message("indexing and checking ratings");
    for statement in restore {
        info!(statement, "import: restoring");
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("restoring ratings checks: {statement}"))?;
    }
    Ok(())
}

const COPY_GENRES: &str = "COPY genres (id, name, slug) FROM STDIN";
const COPY_MOVIES: &str = "COPY movies (id, title, year) FROM STDIN";
const COPY_MOVIE_GENRES: &str = "COPY movie_genres (movie_id, genre_id) FROM STDIN";
const COPY_USERS: &str = "COPY users (id) FROM STDIN";
const COPY_RATINGS: &str = "COPY ratings (user_id, movie_id, rating, rated_at) FROM STDIN";

/// Loads `names` as genres `1..`, with their URL slugs.
async fn copy_genres(conn: &mut PgConnection, names: Vec<String>) -> Result<u64> {
    anyhow::ensure!(
        names.len() < i16::MAX as usize,
        "too many genres: {}",
        names.len()
    );
    copy::copy_in(conn, "genres", COPY_GENRES, None, move |sink| {
        for (i, name) in names.iter().enumerate() {
            sink.int(i as i64 + 1)
                .text(name)
                .text(&shared::params::genre_slug(name));
            sink.end_row()?;
        }
        Ok(())
    })
    .await
}

/// A progress bar over ratings on stderr, hidden unless wanted and stderr is a terminal.
fn progress_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} {msg:32} [{bar:30}] {human_pos}/{human_len} ratings ({per_sec:0}, eta {eta})",
    )
    .expect("valid progress template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
