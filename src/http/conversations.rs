//! `/v1/collections/{collection}/conversations` (and `/v1/conversations` on
//! `default`) and `/v1/conversations/{conversation_id}`: questions asked one
//! after another, follow-ups rewritten with what came before.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Authorized, InCollection, Read, note_query_text};
use super::extract::ConversationIdParam;
use super::problem::{AppError, Problem};
use crate::domain::{Conversation, ConversationId, Turn};
use crate::service::conversations::{Conversations, MessageRequest};

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: ConversationId,
    /// The collection it asks in.
    #[schema(example = "default")]
    pub collection: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Each question with its answer, oldest first.
    pub turns: Vec<Turn>,
}

impl ConversationView {
    fn of(conversation: Conversation, turns: Vec<Turn>) -> Self {
        Self {
            id: conversation.id,
            collection: conversation.collection.name().to_string(),
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
            turns,
        }
    }
}

/// Start a conversation in a collection. Also `POST /v1/conversations` on `default`.
#[utoipa::path(
    post, path = "/v1/collections/{collection}/conversations", operation_id = "create_conversation",
    tag = "conversations",
    params(("collection" = crate::domain::CollectionName, Path)),
    responses(
        (status = 201, body = ConversationView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    target: InCollection<Read>,
    conversations: web::Data<Conversations>,
) -> Result<HttpResponse, AppError> {
    let conversation = conversations.start(&target.scope, &target.collection).await?;
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/v1/conversations/{}", conversation.id)))
        .json(ConversationView::of(conversation, Vec::new())))
}

/// A conversation with its questions and answers.
#[utoipa::path(
    get, path = "/v1/conversations/{conversation_id}", operation_id = "get_conversation", tag = "conversations",
    params(("conversation_id" = crate::domain::ConversationId, Path)),
    responses(
        (status = 200, body = ConversationView),
        (status = 404, description = "No such conversation, or another caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    caller: Authorized<Read>,
    id: ConversationIdParam,
    conversations: web::Data<Conversations>,
) -> Result<HttpResponse, AppError> {
    let (conversation, turns) = conversations.show(&caller.scope, id.0).await?;
    Ok(HttpResponse::Ok().json(ConversationView::of(conversation, turns)))
}

/// Delete a conversation.
#[utoipa::path(
    delete, path = "/v1/conversations/{conversation_id}", operation_id = "delete_conversation",
    tag = "conversations",
    params(("conversation_id" = crate::domain::ConversationId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    caller: Authorized<Read>,
    id: ConversationIdParam,
    conversations: web::Data<Conversations>,
) -> Result<HttpResponse, AppError> {
    conversations.delete(&caller.scope, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ask the next question. A follow-up ("and in 2023?") is rewritten into a
/// standalone question first (by the LLM when one is configured, else by a
/// rule); the answer carries it as `retrieval_query`, and is stored. With
/// `"stream": true` or `Accept: text/event-stream`: the events of `/query`.
#[utoipa::path(
    post, path = "/v1/conversations/{conversation_id}/messages", operation_id = "ask_in_conversation",
    tag = "conversations",
    params(("conversation_id" = crate::domain::ConversationId, Path)),
    request_body = MessageRequest,
    responses(
        (status = 200, description = "The answer, with the question it was retrieved with (`retrieval_query`)", content(
            (crate::domain::Answer = "application/json"),
            (super::search::AnswerStreamEvent = "text/event-stream"),
        )),
        (status = 400, description = "Malformed JSON; generative mode without an LLM", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The LLM failed or its answer was unusable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The LLM timed out", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ask(
    caller: Authorized<Read>,
    id: ConversationIdParam,
    http: HttpRequest,
    body: web::Json<MessageRequest>,
    conversations: web::Data<Conversations>,
) -> Result<HttpResponse, AppError> {
    let message = body.into_inner();
    note_query_text(&http, &message.content);
    if message.stream || super::search::wants_event_stream(&http) {
        let events = conversations.ask_events(&caller.scope, id.0, message).await?;
        return Ok(super::sse::response(events));
    }
    let turn = conversations.ask(&caller.scope, id.0, message);
    let turn = super::peer::unless_client_leaves(&http, async { Ok(turn.await?) }).await?;
    Ok(HttpResponse::Ok().json(turn.answer))
}
