use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Answer, CollectionName, ConversationId};

/// Questions asked one after another in one collection, by one caller: its
/// `owner` is who asked (a key and the principals it acted for, a signed-in
/// user, or the operator), and nobody else sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub collection: CollectionName,
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One question and its answer, stored once the answer is complete.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Turn {
    /// 1 for the first question of the conversation.
    pub seq: u32,
    /// What was asked, as asked.
    pub question: String,
    /// The standalone question it was rewritten into and retrieved with.
    pub retrieval_query: String,
    pub answer: Answer,
    pub created_at: DateTime<Utc>,
}

/// A turn to append (its `seq` and time are the catalog's).
#[derive(Debug, Clone)]
pub struct NewTurn {
    pub question: String,
    pub retrieval_query: String,
    pub answer: Answer,
}
