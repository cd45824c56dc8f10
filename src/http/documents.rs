//! `/v1/collections/{collection}/documents` (and `/v1/documents` on `default`).

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{InCollection, Read, Write};
use super::extract::{DocumentIdParam, PageParam};
use super::problem::{AppError, Problem};
use crate::domain::Document;
use crate::ingest::{Ingestor, UploadStatus, UploadedDocument};
use crate::service::documents::{Documents, ListDocuments, PageText, UpdateDocument};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Answer only when every document is ready or failed.
    #[serde(default)]
    pub wait: bool,
}

/// The multipart form of an upload (read part by part by `super::upload`; this
/// type only documents it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// One or more files, recognised by content: PDF, Word, PowerPoint, Excel
    /// (also the older binary formats), OpenDocument, CSV, HTML, images (OCR),
    /// plain text or Markdown.
    #[schema(value_type = Vec<String>, format = Binary, example = json!(["The warranty lasts two years."]))]
    file: Vec<Vec<u8>>,
    /// A JSON object stored with every document of the request, to filter on.
    #[schema(example = "{\"team\": \"legal\"}")]
    metadata: Option<String>,
    /// A JSON array of the principals who may read the documents; absent: everyone of the tenant.
    #[schema(example = "[\"group:legal\", \"user:alice@corp\"]")]
    access: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    pub documents: Vec<UploadedDocument>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<Document>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Upload one or more files.
///
/// Multipart form with one or more `file` parts (office documents, PDFs,
/// images, text; recognised by content), an optional `metadata` part holding a
/// JSON object and an optional `access` part holding the readers' principals.
/// Also `POST /v1/documents` for the `default` collection.
#[utoipa::path(
    post, path = "/v1/collections/{collection}/documents", operation_id = "upload_documents", tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), UploadParams),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Accepted; processing in the background", body = UploadResponse, links(
            ("job" = (operation_id = "get_job", parameters(("job_id" = "$response.body#/documents/0/job_id")))),
            ("document" = (operation_id = "get_document", parameters(
                ("collection" = "$request.path.collection"),
                ("document_id" = "$response.body#/documents/0/id"),
            ))),
            ("delete" = (operation_id = "delete_document", parameters(
                ("collection" = "$request.path.collection"),
                ("document_id" = "$response.body#/documents/0/id"),
            ))),
            ("update" = (operation_id = "update_document", parameters(
                ("collection" = "$request.path.collection"),
                ("document_id" = "$response.body#/documents/0/id"),
            ))),
            ("first_page" = (operation_id = "get_page", parameters(
                ("collection" = "$request.path.collection"),
                ("document_id" = "$response.body#/documents/0/id"),
                ("page" = 1),
            ))),
        )),
        (status = 200, description = "With `wait=true`: the final status of every document", body = UploadResponse),
        (status = 400, description = "No file, an empty file, a bad multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such collection", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not upload, or the tenant's document quota is reached (`/problems/quota-exceeded`)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body stalled or arrived slower than UPLOAD_MIN_BYTES_PER_SEC", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A file is over MAX_UPLOAD_BYTES, the body over MAX_REQUEST_BYTES, or the upload would pass the tenant's storage quota", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a supported type (judged from a file's first 64 KiB, before the rest is read)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad metadata; or with `wait=true`, every file failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "MAX_CONCURRENT_UPLOADS bodies are being received; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn upload(
    target: InCollection<Write>,
    request: HttpRequest,
    params: web::Query<UploadParams>,
    payload: Multipart,
    ingestor: web::Data<Ingestor>,
) -> Result<HttpResponse, AppError> {
    // Judged before a byte of the body is read.
    let receiving = ingestor.upload_permit().await?;
    let limits = ingestor.upload_limits;
    if let Some(declared) = declared_length(&request)
        && declared > limits.max_request_bytes
    {
        return Err(AppError::BodyTooLarge {
            limit: limits.max_request_bytes,
        });
    }
    ingestor.check_before_reading(&target.collection).await?;
    let upload = super::upload::read(payload, ingestor.files().staging_dir(), limits).await?;
    let documents = ingestor
        .accept(&target.collection, upload.files, upload.metadata, upload.access)
        .await?;
    drop(receiving);
    if !params.wait {
        return Ok(HttpResponse::Accepted().json(UploadResponse { documents }));
    }
    let documents = ingestor.wait(&target.collection, documents).await?;
    if documents.iter().all(|d| d.status == UploadStatus::Failed) {
        return Err(AppError::IngestionFailed { documents });
    }
    Ok(HttpResponse::Ok().json(UploadResponse { documents }))
}

/// The body's size as its `Content-Length` declares it (chunked bodies have none).
fn declared_length(request: &HttpRequest) -> Option<u64> {
    request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// List documents, oldest first.
#[utoipa::path(
    get, path = "/v1/collections/{collection}/documents", operation_id = "list_documents", tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), ListDocuments),
    responses(
        (status = 200, body = DocumentList),
        (status = 422, description = "Bad limit, cursor or status", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    target: InCollection<Read>,
    params: web::Query<ListDocuments>,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    let page = documents
        .list(&target.collection, params.into_inner(), &target.scope.readers())
        .await?;
    Ok(HttpResponse::Ok().json(DocumentList {
        documents: page.documents,
        next_cursor: page.next_cursor,
    }))
}

/// One document and its processing status.
#[utoipa::path(
    get, path = "/v1/collections/{collection}/documents/{document_id}", operation_id = "get_document", tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), ("document_id" = crate::domain::DocumentId, Path)),
    responses(
        (status = 200, body = Document),
    )
)]
pub async fn get(
    target: InCollection<Read>,
    id: DocumentIdParam,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(documents.get(&target.collection, id.0, &target.scope.readers()).await?))
}

/// The text of one page (slide, sheet) of a ready document.
#[utoipa::path(
    get, path = "/v1/collections/{collection}/documents/{document_id}/pages/{page}", operation_id = "get_page",
    tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), ("document_id" = crate::domain::DocumentId, Path), ("page" = u32, Path, minimum = 1)),
    responses(
        (status = 200, body = PageText),
        (status = 409, description = "The document is not ready", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The page is not a number from 1", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn page(
    target: InCollection<Read>,
    id: DocumentIdParam,
    page: PageParam,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    let readers = target.scope.readers();
    Ok(HttpResponse::Ok().json(documents.page(&target.collection, id.0, page.0, &readers).await?))
}

/// The file a document was made from, as uploaded (any status): range requests,
/// `ETag`, and its type and name in `Content-Type` and `Content-Disposition`.
///
/// PDFs and images are `inline` (the web page renders them); every other type
/// is an `attachment` under a sandboxing policy, so that an uploaded HTML page
/// never runs as this site.
#[utoipa::path(
    get, path = "/v1/collections/{collection}/documents/{document_id}/file", operation_id = "get_document_file",
    tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), ("document_id" = crate::domain::DocumentId, Path)),
    responses(
        (status = 200, description = "The file, in the type it was recognised as (`Content-Type`)", content(
            (Vec<u8> = "*/*"),
        )),
        (status = 206, description = "The byte range asked for with `Range`", content(
            (Vec<u8> = "*/*"),
        )),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 416, description = "The range is not within the file"),
    )
)]
pub async fn file(
    target: InCollection<Read>,
    id: DocumentIdParam,
    request: HttpRequest,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    let readers = target.scope.readers();
    let stored = documents.file(&target.collection, id.0, &readers).await?;
    super::files::response(stored, &request)
}

/// Delete a document; its vectors are gone before its row is.
#[utoipa::path(
    delete, path = "/v1/collections/{collection}/documents/{document_id}", operation_id = "delete_document", tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), ("document_id" = crate::domain::DocumentId, Path)),
    responses(
        (status = 204, description = "Deleted"),
    )
)]
pub async fn delete(
    target: InCollection<Write>,
    id: DocumentIdParam,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    let documents = documents.into_inner();
    let readers = target.scope.readers();
    super::to_completion(async move { Ok(documents.delete(&target.collection, id.0, &readers).await?) }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change a document's `access` and/or `metadata` without re-embedding it; in
/// effect for the next search.
#[utoipa::path(
    patch, path = "/v1/collections/{collection}/documents/{document_id}", operation_id = "update_document", tag = "documents",
    params(("collection" = crate::domain::CollectionName, Path), ("document_id" = crate::domain::DocumentId, Path)),
    request_body = UpdateDocument,
    responses(
        (status = 200, body = Document),
        (status = 409, description = "The document is still being processed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad access or metadata, or neither", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    target: InCollection<Write>,
    id: DocumentIdParam,
    body: web::Json<UpdateDocument>,
    documents: web::Data<Documents>,
) -> Result<HttpResponse, AppError> {
    let readers = target.scope.readers();
    let documents = documents.into_inner();
    let request = body.into_inner();
    let updated =
        super::to_completion(async move { Ok(documents.update(&target.collection, id.0, request, &readers).await?) })
            .await?;
    Ok(HttpResponse::Ok().json(updated))
}
