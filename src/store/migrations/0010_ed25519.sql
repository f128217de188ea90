-- Asymmetric signatures: how a webhook signs (hmac-sha256 or ed25519) and, for ed25519, the
-- current key's public half (whpk_…; the private key is sealed in `secret` like any secret).
ALTER TABLE webhooks ADD COLUMN signing_algorithm TEXT NOT NULL DEFAULT 'hmac-sha256';
ALTER TABLE webhooks ADD COLUMN public_key TEXT;
