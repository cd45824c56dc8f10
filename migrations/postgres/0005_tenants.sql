-- Tenants: isolated namespaces. Everything written before tenants existed is
-- tenant `default`'s. A collection's `name` column holds its key (the name in
-- `default`, `<tenant>~<name>` elsewhere); `tenant` says whose it is.

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

INSERT INTO tenants (name, created_at) VALUES ('default', now());

ALTER TABLE collections ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';

CREATE INDEX collections_by_tenant ON collections (tenant, name);
