-- The audit log names the user of a JWT sign-in, and keeps the text of searches
-- and questions when AUDIT_QUERY_TEXT=true (NULL otherwise).

ALTER TABLE audit_log ADD COLUMN signed_in_user TEXT;
ALTER TABLE audit_log ADD COLUMN query_text TEXT;
