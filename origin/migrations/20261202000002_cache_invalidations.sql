-- A user's invalidations Redis did not acknowledge (it was down or unreachable when their
-- rating committed), recorded before the rating is answered, so that every instance, not only
-- the one that made the rating, delivers them: each instance replaces these users' generation
-- tokens (and deletes the rows) after it reconnects to Redis, before it reads any user's value
-- from it again, and every half second meanwhile. This is what makes a Redis that keeps its data
-- across a restart (an append-only file) safe: a token it brings back from before the outage is
-- replaced before anyone reads under it. Empty in normal operation.
CREATE TABLE cache_invalidations (
    user_id INTEGER PRIMARY KEY,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
