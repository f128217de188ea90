-- The servers sharing a database (PostgreSQL), each with when it was last seen alive: the
-- leases of one not seen for a few seconds are taken over at once, not after the lease margin.
CREATE TABLE servers (
    id      TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
