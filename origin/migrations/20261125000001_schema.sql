-- Catalogue, users and ratings. Ratings are the source of truth; the counters on movies and
-- users are maintained in the same transaction as each rating so that popularity, averages and
-- the power-user threshold never need a scan of the ratings table on a request path.

CREATE TABLE genres (
    id   SMALLINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    slug TEXT NOT NULL UNIQUE
);

CREATE TABLE movies (
    id           INTEGER PRIMARY KEY,
    title        TEXT NOT NULL,
    year         SMALLINT,
    rating_count INTEGER NOT NULL DEFAULT 0,
    rating_sum   DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX movies_popularity ON movies (rating_count DESC, id);

CREATE TABLE movie_genres (
    movie_id INTEGER NOT NULL REFERENCES movies (id) ON DELETE CASCADE,
    genre_id SMALLINT NOT NULL REFERENCES genres (id) ON DELETE CASCADE,
    PRIMARY KEY (movie_id, genre_id)
);
CREATE INDEX movie_genres_genre ON movie_genres (genre_id, movie_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    rating_count  INTEGER NOT NULL DEFAULT 0,
    rating_sum    DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_rated_at TIMESTAMPTZ
);
CREATE INDEX users_activity ON users (rating_count DESC);

CREATE TABLE ratings (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    movie_id INTEGER NOT NULL REFERENCES movies (id) ON DELETE CASCADE,
    -- 0.5 to 5.0 in steps of 0.5: exactly representable as REAL.
    rating   REAL NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0 AND rating * 2 = round(rating * 2)),
    rated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, movie_id)
);
CREATE INDEX ratings_movie ON ratings (movie_id);

-- One row per imported data set, so that `origin import` is idempotent.
CREATE TABLE imports (
    dataset     TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    movies      INTEGER NOT NULL,
    users       INTEGER NOT NULL,
    ratings     BIGINT NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Top movies by genre: movies with more than 50 ratings, by average rating. Refreshed hourly
-- and on demand with REFRESH ... CONCURRENTLY, which needs the unique index below.
CREATE MATERIALIZED VIEW top_movies_by_genre AS
SELECT mg.genre_id,
       m.id AS movie_id,
       (m.rating_sum / m.rating_count)::DOUBLE PRECISION AS avg_rating,
       m.rating_count,
       row_number() OVER (PARTITION BY mg.genre_id
                          ORDER BY m.rating_sum / m.rating_count DESC, m.rating_count DESC, m.id)::INTEGER AS rank
FROM movie_genres mg
JOIN movies m ON m.id = mg.movie_id
WHERE m.rating_count > 50;

CREATE UNIQUE INDEX top_movies_by_genre_key ON top_movies_by_genre (genre_id, movie_id);
CREATE INDEX top_movies_by_genre_rank ON top_movies_by_genre (genre_id, rank);
