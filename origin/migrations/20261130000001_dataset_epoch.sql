-- The data set's epoch: a random number replaced by every import that changes the data
-- (`origin import`, `--replace`). Every cached value carries the epoch it was computed in, and
-- an instance serves only values of the epoch it last read here, so nothing of a replaced
-- data set is served from Redis.
CREATE TABLE dataset_epoch (
    singleton  BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch      BIGINT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
