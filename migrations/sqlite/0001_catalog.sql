-- Timestamps are TEXT in one fixed RFC 3339 form (microseconds, Z), so that they
-- sort as text and serve as listing cursors.

CREATE TABLE collections (
    name          TEXT PRIMARY KEY,
    description   TEXT,
    embed_model   TEXT,
    embed_variant TEXT,
    embed_dim     INTEGER,
    created_at    TEXT NOT NULL
);

CREATE TABLE documents (
    id           TEXT PRIMARY KEY,
    collection   TEXT NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    pages        INTEGER,
    chunks       INTEGER,
    status       TEXT NOT NULL,
    error        TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}',
    job_id       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    -- One collection holds each content once; the insert that loses the race sees a duplicate.
    UNIQUE (collection, sha256)
);

CREATE INDEX documents_by_collection ON documents (collection, created_at, id);

CREATE TABLE chunks (
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    page_start  INTEGER NOT NULL,
    page_end    INTEGER NOT NULL,
    char_start  INTEGER NOT NULL,
    char_end    INTEGER NOT NULL,
    text        TEXT NOT NULL,
    page_breaks TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (document_id, idx)
);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    progress    TEXT NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE INDEX jobs_by_status ON jobs (status, created_at, id);
CREATE INDEX jobs_by_document ON jobs (document_id);
