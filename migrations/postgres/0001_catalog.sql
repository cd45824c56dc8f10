-- The catalog on Postgres: the same tables as on SQLite (migrations/sqlite, as
-- of its latest migration), in Postgres' own types.

CREATE TABLE collections (
    name          TEXT PRIMARY KEY,
    description   TEXT,
    embed_model   TEXT,
    embed_variant TEXT,
    embed_dim     INTEGER,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE documents (
    id           UUID PRIMARY KEY,
    collection   TEXT NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    pages        INTEGER,
    chunks       INTEGER,
    status       TEXT NOT NULL,
    error        TEXT,
    metadata     JSONB NOT NULL DEFAULT '{}',
    job_id       UUID NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    -- One collection holds each content once; the insert that loses the race sees a duplicate.
    UNIQUE (collection, sha256)
);

CREATE INDEX documents_by_collection ON documents (collection, created_at, id);

CREATE TABLE chunks (
    document_id UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    page_start  INTEGER NOT NULL,
    page_end    INTEGER NOT NULL,
    char_start  BIGINT NOT NULL,
    char_end    BIGINT NOT NULL,
    text        TEXT NOT NULL,
    page_breaks JSONB NOT NULL DEFAULT '[]',
    PRIMARY KEY (document_id, idx)
);

CREATE TABLE jobs (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL,
    collection  TEXT NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
    document_id UUID REFERENCES documents (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    progress    JSONB NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'ingest') = (document_id IS NOT NULL))
);

CREATE INDEX jobs_by_status ON jobs (status, created_at, id);
CREATE INDEX jobs_by_document ON jobs (document_id);
CREATE INDEX jobs_by_collection ON jobs (collection, status);
