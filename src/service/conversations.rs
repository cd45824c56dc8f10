//! Conversations: questions asked one after another in one collection, each
//! follow-up rewritten with what came before it, each answer stored with its
//! citations. A conversation is its owner's (`Scope::owner`): to any other key,
//! user or tenant, and outside the key's collections, it does not exist.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::answer::{AnswerError, AnswerEvent, AnswerEventStream, Answerer, Exchange, QueryRequest};
use crate::auth::Scope;
use crate::catalog::{Catalog, now};
use crate::domain::{AnswerMode, CollectionName, Conversation, ConversationId, Filter, NewTurn, Turn};
use crate::store::{StoreError, errors_through_store, find_collection};

#[derive(Debug, thiserror::Error)]
pub enum ConversationsError {
    #[error("no conversation {0}")]
    NotFound(String),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

errors_through_store!(ConversationsError);

/// `POST /v1/conversations/{id}/messages`: the next question.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The question, as the user asked it ("and in 2023?").
    #[schema(example = "And how long does it last?", min_length = 1, max_length = 4096)]
    pub content: String,
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<usize>,
    pub filter: Option<Filter>,
    #[serde(default)]
    pub mode: AnswerMode,
    /// Server-sent events as `/query` streams them; the answer is stored once complete.
    #[serde(default)]
    pub stream: bool,
}

impl MessageRequest {
    fn into_query(self) -> QueryRequest {
        QueryRequest {
            question: self.content,
            top_k: self.top_k,
            filter: self.filter,
            mode: self.mode,
            stream: self.stream,
        }
    }
}

pub struct Conversations {
    catalog: Arc<dyn Catalog>,
    answerer: Arc<Answerer>,
}

impl Conversations {
    pub fn new(catalog: Arc<dyn Catalog>, answerer: Arc<Answerer>) -> Self {
        Self { catalog, answerer }
    }

    /// A new conversation in `collection` (one the scope may use), the scope's own.
    pub async fn start(&self, scope: &Scope, collection: &CollectionName) -> Result<Conversation, ConversationsError> {
        find_collection(self.catalog.as_ref(), collection).await?;
        let at = now();
        let conversation = Conversation {
            id: ConversationId::new(),
            collection: collection.clone(),
            owner: scope.owner(),
            created_at: at,
            updated_at: at,
        };
        match self.catalog.create_conversation(&conversation).await {
            Ok(()) => Ok(conversation),
            // The collection was deleted meanwhile.
            Err(crate::catalog::CatalogError::MissingParent(_)) => {
                Err(StoreError::CollectionNotFound(collection.name().to_string()).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The conversation and its turns, oldest first.
    pub async fn show(
        &self,
        scope: &Scope,
        id: ConversationId,
    ) -> Result<(Conversation, Vec<Turn>), ConversationsError> {
        let conversation = self.find(scope, id).await?;
        let turns = self.catalog.conversation_turns(id).await?;
        Ok((conversation, turns))
    }

    pub async fn delete(&self, scope: &Scope, id: ConversationId) -> Result<(), ConversationsError> {
        self.find(scope, id).await?;
        self.catalog.delete_conversation(id).await?;
        Ok(())
    }

    /// The next question answered (rewritten with the history first) and stored.
    pub async fn ask(
        &self,
        scope: &Scope,
        id: ConversationId,
        message: MessageRequest,
    ) -> Result<Turn, ConversationsError> {
        let (conversation, request, history) = self.prepare(scope, id, message).await?;
        let question = request.question.clone();
        let rewritten = self.answerer.rewrite(&history, &question, request.mode).await;
        let answer = self
            .answerer
            .answer(&conversation.collection, request, Some(rewritten), &scope.readers())
            .await?;
        let turn = NewTurn {
            question,
            retrieval_query: answer.retrieval_query.clone().unwrap_or_default(),
            answer,
        };
        self.catalog
            .append_turn(id, &turn)
            .await?
            .ok_or_else(|| ConversationsError::NotFound(id.to_string()))
    }

    /// The same as events; the answer is stored as its event goes out (a
    /// stream the client leaves early stores nothing).
    pub async fn ask_events(
        &self,
        scope: &Scope,
        id: ConversationId,
        message: MessageRequest,
    ) -> Result<AnswerEventStream, ConversationsError> {
        let (conversation, request, history) = self.prepare(scope, id, message).await?;
        let question = request.question.clone();
        let rewritten = self.answerer.rewrite(&history, &question, request.mode).await;
        let events = self
            .answerer
            .clone()
            .answer_events(&conversation.collection, request, Some(rewritten), &scope.readers())
            .await?;
        let catalog = self.catalog.clone();
        let stored = events.then(move |event| {
            let catalog = catalog.clone();
            let question = question.clone();
            async move {
                let AnswerEvent::Answer(answer) = event else {
                    return event;
                };
                let turn = NewTurn {
                    question,
                    retrieval_query: answer.retrieval_query.clone().unwrap_or_default(),
                    answer: (*answer).clone(),
                };
                match catalog.append_turn(id, &turn).await {
                    Ok(Some(_)) => AnswerEvent::Answer(answer),
                    Ok(None) => AnswerEvent::Error(Box::new(AnswerError::NotStored(format!(
                        "conversation {id} was deleted meanwhile"
                    )))),
                    Err(e) => AnswerEvent::Error(Box::new(AnswerError::NotStored(e.to_string()))),
                }
            }
        });
        Ok(Box::pin(stored))
    }

    async fn prepare(
        &self,
        scope: &Scope,
        id: ConversationId,
        message: MessageRequest,
    ) -> Result<(Conversation, QueryRequest, Vec<Exchange>), ConversationsError> {
        let request = message.into_query();
        self.answerer.check(&request)?;
        let conversation = self.find(scope, id).await?;
        let history = self
            .catalog
            .conversation_turns(id)
            .await?
            .into_iter()
            .map(|turn| Exchange {
                question: turn.question,
                retrieval_query: turn.retrieval_query,
                answer: turn.answer.answer,
            })
            .collect();
        Ok((conversation, request, history))
    }

    /// The conversation, if it is the scope's and in a collection it may use.
    async fn find(&self, scope: &Scope, id: ConversationId) -> Result<Conversation, ConversationsError> {
        self.catalog
            .get_conversation(id)
            .await?
            .filter(|c| scope.allows(&c.collection) && c.owner == scope.owner())
            .ok_or_else(|| ConversationsError::NotFound(id.to_string()))
    }
}
