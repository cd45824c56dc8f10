//! Black-box tests: docqa spawned in-process on a random port over a temporary
//! data dir (real SQLite, a real Qdrant Edge shard, the real embedding model),
//! talked to over HTTP. Only the LLM is replaced, by an OpenAI-compatible
//! server inside the test.

mod auth;
mod backends;
mod boxes;
mod catalog;
mod chunking;
mod collections;
mod conversations;
mod documents;
mod errors;
mod eval;
mod fake_llm;
mod fixtures;
mod formats;
mod health;
mod helpers;
mod hostile;
mod index;
mod jwt;
mod lifecycle;
mod llm;
mod mcp;
mod model_download;
mod ocr;
mod onnx;
mod openai_compat;
mod outages;
mod pdf;
mod process;
mod reindex;
mod retrieval;
mod server;
mod stream;
mod uploads;
mod webhooks;
