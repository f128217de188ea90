-- Tenant-wide settings: where to tell a tenant's people about a failing webhook that names no
-- owner of its own.
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    contact_email TEXT,
    updated_at    BIGINT NOT NULL
);
