//! `/v1/collections/{collection}/search` and `/query` (and the short routes on `default`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{InCollection, Read, note_query_text};
use super::problem::{AppError, Problem};
use crate::answer::{Answerer, QueryRequest};
use crate::domain::{Answer, SearchHit};
use crate::retrieve::{Retriever, SearchRequest};

/// One server-sent event of a streamed answer (the schema of each event of a
/// `text/event-stream` response): `data` holds the event's JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerStreamEvent {
    #[schema(pattern = "^(retrieval|delta|answer|error)$", example = "answer")]
    pub event: String,
    /// `retrieval`: `{results}`; `delta`: `{text}`; `answer`: the Answer; `error`: a problem.
    pub data: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Best first.
    pub results: Vec<SearchHit>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Ranked chunks for a query, no LLM. Also `POST /v1/search` on `default`.
#[utoipa::path(
    post, path = "/v1/collections/{collection}/search", operation_id = "search", tag = "search",
    params(("collection" = crate::domain::CollectionName, Path)),
    request_body = SearchRequest,
    responses(
        (status = 200, body = SearchResponse),
        (status = 409, description = "The collection was indexed with another embedding model", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing query, top_k out of range, bad filter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    target: InCollection<Read>,
    http: HttpRequest,
    body: web::Json<SearchRequest>,
    retriever: web::Data<Retriever>,
) -> Result<HttpResponse, AppError> {
    note_query_text(&http, &body.query);
    let retrieved = retriever
        .search(&target.collection, body.into_inner(), &target.scope.readers())
        .await?;
    Ok(HttpResponse::Ok().json(SearchResponse {
        results: retrieved.hits,
        warnings: retrieved.warnings,
    }))
}

/// Answer a question from the documents, with citations. Also `POST /v1/query` on `default`.
///
/// With `"stream": true` or `Accept: text/event-stream`: server-sent events,
/// `retrieval` (`{results}`), `delta` (`{text}`, the answer as it is written),
/// then `answer` (the Answer, citations verified: it is the one that counts) or
/// `error` (a problem). Comment lines keep an idle stream alive.
#[utoipa::path(
    post, path = "/v1/collections/{collection}/query", operation_id = "query", tag = "search",
    params(("collection" = crate::domain::CollectionName, Path)),
    request_body = QueryRequest,
    responses(
        (status = 200, description = "The answer; server-sent events when streamed", content(
            (Answer = "application/json"),
            (AnswerStreamEvent = "text/event-stream"),
        )),
        (status = 400, description = "Malformed JSON; generative mode without an LLM", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The LLM failed or its answer was unusable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The LLM timed out", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn query(
    target: InCollection<Read>,
    http: HttpRequest,
    body: web::Json<QueryRequest>,
    answerer: web::Data<Answerer>,
) -> Result<HttpResponse, AppError> {
    let request = body.into_inner();
    note_query_text(&http, &request.question);
    if request.stream || wants_event_stream(&http) {
        let events = answerer
            .into_inner()
            .answer_events(&target.collection, request, None, &target.scope.readers())
            .await?;
        return Ok(super::sse::response(Box::pin(events)));
    }
    let readers = target.scope.readers();
    let answer = answerer.answer(&target.collection, request, None, &readers);
    Ok(HttpResponse::Ok().json(super::peer::unless_client_leaves(&http, async { Ok(answer.await?) }).await?))
}

pub(super) fn wants_event_stream(http: &HttpRequest) -> bool {
    http.headers()
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}
