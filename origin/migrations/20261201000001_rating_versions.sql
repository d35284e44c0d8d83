-- Per-user rating versions, so that a user's recommendation state cached in Redis is brought up
-- to date by reading only what changed (see `Db::ratings_since`). Every rating write
-- increments its user's `rating_version` (under the user's row lock) and stamps the rating row
-- with the new value: per user, versions are in commit order.
--
-- Constant defaults: PostgreSQL records them in the catalogue, no table is rewritten (25M
-- ratings stay where they are). Existing and imported ratings are version 0.
ALTER TABLE users ADD COLUMN rating_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ratings ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- "This user's ratings after version V": only rows written through the API (version > 0) are
-- indexed, so a bulk import (all version 0) builds an empty index, and the index grows with the
-- ratings users make, not with the data set. The import drops and recreates secondary indexes
-- of `ratings` from their definitions, this predicate included.
CREATE INDEX ratings_user_version ON ratings (user_id, version) WHERE version > 0;
