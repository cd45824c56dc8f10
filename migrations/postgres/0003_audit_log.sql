-- The audit log: append-only, one row per audited request (changes, searches,
-- queries, refusals). `tenant` is NULL for a request refused before its caller
-- was known.

CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    request_id  TEXT NOT NULL,
    tenant      TEXT,
    key_id      UUID,
    acting_for  JSONB NOT NULL DEFAULT '[]',
    action      TEXT NOT NULL,
    collection  TEXT,
    document_id TEXT,
    status      INTEGER NOT NULL
);

CREATE INDEX audit_by_time ON audit_log (at, id);
CREATE INDEX audit_by_tenant ON audit_log (tenant, at, id);
