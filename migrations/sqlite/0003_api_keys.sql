-- API keys: each belongs to a tenant and has a role; only the SHA-256 of its
-- secret is kept. `collections` is a JSON array (the allow-list) or JSON null
-- (every collection of the tenant).

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    rights       TEXT,
    collections  TEXT NOT NULL DEFAULT 'null',
    principals   TEXT NOT NULL DEFAULT '[]',
    name         TEXT,
    expires_at   TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
