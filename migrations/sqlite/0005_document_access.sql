-- Who may read a document: a JSON array of principals (`user:…`, `group:…`);
-- empty, everyone of the tenant (so every document written before stays open).
ALTER TABLE documents ADD COLUMN access TEXT NOT NULL DEFAULT '[]';
