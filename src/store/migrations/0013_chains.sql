-- Tamper-evident chains (store/chain.rs): each audit entry and each delivery attempt is the
-- next link of its tenant's chain: `chain_seq` counts from 1, `hash` is SHA-256 over
-- `prev_hash` and the digest of the entry's canonical form. Rows written before this version
-- stay unchained (NULL) and are reported as such by `tocsin verify-log`.
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_chain ON audit_log (tenant_id, chain_seq);
ALTER TABLE attempts ADD COLUMN chain_seq BIGINT;
ALTER TABLE attempts ADD COLUMN prev_hash TEXT;
ALTER TABLE attempts ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX attempts_chain ON attempts (tenant_id, chain_seq);
-- The last link of each chain: what the next one follows, signed with a key derived from the
-- master key, so that a chain rewritten or cut short in the database no longer ends at a head
-- that verifies.
CREATE TABLE chain_heads (
    chain     TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT,
    PRIMARY KEY (chain, tenant_id)
);
-- The last link that retention pruned, signed with a key derived from the master key: where
-- the remaining chain starts.
CREATE TABLE chain_checkpoints (
    chain     TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (chain, tenant_id)
);
