-- Claims scan only pending deliveries: with the state in the key, the scan no longer steps over
-- every delivery already leased (in flight or queued) to reach the pending ones. Expired leases
-- are found by their own sweep (the same index, state 'leased').
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (webhook_id, state, next_attempt_at) WHERE state IN ('pending', 'leased');
