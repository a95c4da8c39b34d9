-- Version 5: calls answered from the response cache.

ALTER TABLE model_calls ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0; -- 1: served from the cache, no upstream call
