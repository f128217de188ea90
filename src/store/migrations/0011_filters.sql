-- Payload filters: a webhook's minimum severity and CEL filter (NULL: none); an event's
-- webhooks whose filter left it out (a JSON array of ids; NULL: none), for its detail.
ALTER TABLE webhooks ADD COLUMN min_severity TEXT;
ALTER TABLE webhooks ADD COLUMN filter TEXT;
ALTER TABLE events ADD COLUMN filtered TEXT;
