-- The circuit breaker's state of a webhook: open until a time (NULL: closed), how many times it
-- opened in a row (its cool-down doubles with each), and since when it has failed without a
-- single success (NULL: healthy). Disabling waits for TOCSIN_DISABLE_AFTER of that.
ALTER TABLE webhooks ADD COLUMN circuit_open_until BIGINT;
ALTER TABLE webhooks ADD COLUMN circuit_opens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN failing_since BIGINT;
