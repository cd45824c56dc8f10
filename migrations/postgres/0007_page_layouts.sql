-- Citation boxes: each chunk keeps its words' rectangles on their pages (JSON,
-- 'null' for formats without pages on paper); each document keeps how the text
-- of its pages was got (text layer or OCR, with the OCR confidence).

ALTER TABLE chunks ADD COLUMN layout JSONB NOT NULL DEFAULT 'null';
ALTER TABLE documents ADD COLUMN page_sources JSONB NOT NULL DEFAULT '[]';
