-- Webhooks: endpoints a tenant's events are posted to, signed with the
-- webhook's secret (kept as given: it signs, it opens nothing here). `events`
-- is a comma-framed list (",document.ready,reindex.done,") that one LIKE finds
-- the subscribers by, on both databases.
-- Deliveries are the outbox: written in the transaction that ends the job they
-- tell of, so that a delivery survives a restart; retried until delivered or
-- out of attempts.

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX webhooks_by_tenant ON webhooks (tenant, created_at);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    next_attempt_at TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
