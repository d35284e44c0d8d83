-- The served model's kind (`algorithm`: `als` or `als+ease`, see recommender::blend): on a
-- catalogue small enough for a dense item-item matrix, EASE's weights (n × n little-endian
-- f32, row-major, in `item_factors`' row order, with their parameters: Ease::to_bytes) are
-- stored beside the ALS factors, with the blend's parameters.
ALTER TABLE models ADD COLUMN item_item BYTEA;
ALTER TABLE models ADD COLUMN blend JSONB;
-- On such a catalogue, each movie's nearest movies too (recommender::neighbours, its bytes),
-- for GET /movies/{id}/similar.
ALTER TABLE models ADD COLUMN item_neighbours BYTEA;
