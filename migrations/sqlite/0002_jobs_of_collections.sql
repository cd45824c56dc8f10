-- A job is no longer always a document's ingestion: a re-index works on a whole
-- collection. Jobs name their kind and collection; document_id is for ingest jobs.
-- `run_after` holds back a job queued again because something it needs was down.

CREATE TABLE jobs_v2 (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    collection  TEXT NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
    document_id TEXT REFERENCES documents (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    progress    TEXT NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CHECK ((kind = 'ingest') = (document_id IS NOT NULL))
);

INSERT INTO jobs_v2 (id, kind, collection, document_id, status, progress, error, attempts, created_at, updated_at)
SELECT j.id, 'ingest', d.collection, j.document_id, j.status, j.progress, j.error, j.attempts, j.created_at, j.updated_at
FROM jobs j JOIN documents d ON d.id = j.document_id;

DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;

CREATE INDEX jobs_by_status ON jobs (status, created_at, id);
CREATE INDEX jobs_by_document ON jobs (document_id);
CREATE INDEX jobs_by_collection ON jobs (collection, status);
