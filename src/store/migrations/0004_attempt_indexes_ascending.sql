-- The delivery log's indexes in ascending time order. New attempts are the newest, so each one now
-- lands at the end of its webhook's (and tenant's) run of the index instead of at its start: an
-- append, not a page split in the middle of the tree. Newest-first listings read them backwards.
-- A webhook's log is looked up by tenant and webhook: both lead its index, so the planner picks
-- it over the tenant-wide one.
DROP INDEX attempts_webhook_newest;
DROP INDEX attempts_tenant_newest;
CREATE INDEX attempts_webhook_newest ON attempts (tenant_id, webhook_id, created_at);
CREATE INDEX attempts_tenant_newest ON attempts (tenant_id, created_at);
