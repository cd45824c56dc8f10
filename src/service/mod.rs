//! What the collection and document routes call: services that take plain
//! arguments and answer with their own errors (`src/http` maps them to HTTP).

pub mod chat;
pub mod collections;
pub mod conversations;
pub mod documents;
pub mod tenants;
