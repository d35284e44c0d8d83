-- Trained recommender models. Every origin instance loads the newest row at start-up and on
-- POST /admin/model/reload; training inserts a new row, so it never disturbs serving.
CREATE TABLE models (
    version      TEXT PRIMARY KEY,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    algorithm    TEXT NOT NULL,
    params       JSONB NOT NULL,
    factors      INTEGER NOT NULL,
    -- Movie ids in factor-row order, and their factors: little-endian f32, row-major.
    item_ids     INTEGER[] NOT NULL,
    item_factors BYTEA NOT NULL,
    -- Mean loss of the last epoch, for the record.
    final_loss   DOUBLE PRECISION
);
CREATE INDEX models_newest ON models (created_at DESC);
