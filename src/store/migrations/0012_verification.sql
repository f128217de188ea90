-- Endpoint ownership verification: not_required, pending (deliveries held until the endpoint
-- answers a challenge), verified, or exempt (SIEM transports).
ALTER TABLE webhooks ADD COLUMN verification TEXT NOT NULL DEFAULT 'not_required';
