-- Conversations: questions asked one after another in one collection by one
-- owner (a key and the principals it acted for, a user, or the operator). A
-- turn is a question and its answer (the Answer as JSON), written once the
-- answer is complete. Both go with their collection.

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    collection TEXT NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX conversations_by_collection ON conversations (collection);

CREATE TABLE conversation_turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    question        TEXT NOT NULL,
    retrieval_query TEXT NOT NULL,
    answer          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
