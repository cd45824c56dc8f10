//! The OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    audit, collections, conversations, documents, health, jobs, keys, openai_compat, search, tenants, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "docqa",
        description = "Upload documents, ask questions, get answers that cite document, page and quote.\n\n\
            Every route under `/v1/collections/{collection}/…` also exists without the collection part \
            (`POST /v1/documents`, `POST /v1/search`, `POST /v1/query`, …), acting on the collection `default`.\n\n\
            Errors are `application/problem+json` (RFC 9457) with a stable `type`.\n\n\
            Every route under `/v1` and `/metrics` needs `Authorization: Bearer <key>` when authentication \
            is on (`DOCQA_AUTH`; off by default on a loopback address). `/healthz`, `/readyz`, `/openapi.json` \
            and `/docs` are open."
    ),
    paths(
        health::healthz, health::readyz, health::metrics,
        collections::create, collections::list, collections::get, collections::delete, collections::reindex,
        documents::upload, documents::list, documents::get, documents::update, documents::delete, documents::page, documents::file,
        jobs::get, jobs::retry,
        search::search, search::query,
        conversations::create, conversations::get, conversations::delete, conversations::ask,
        openai_compat::list_models, openai_compat::get_model, openai_compat::chat_completions,
        keys::create, keys::list, keys::revoke, audit::read, tenants::create, tenants::list,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::deliveries,
    ),
    modifiers(&CommonResponses),
    tags(
        (name = "documents", description = "Uploading and managing documents and their ingestion jobs"),
        (name = "search", description = "Retrieval and answers"),
        (name = "webhooks", description = "Signed notices of a tenant's documents and re-indexes, retried from a durable outbox"),
        (name = "openai", description = "OpenAI-compatible: collections as models, chat completions with citations"),
        (name = "conversations", description = "Questions asked one after another; follow-ups rewritten to stand alone"),
        (name = "collections", description = "Named sets of documents"),
        (name = "operations", description = "Health and metrics"),
        (name = "keys", description = "Tenants, API keys and the audit log: for the operator and tenant admins"),
    )
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The OpenAPI document as served. utoipa 5.5 writes a link's fields in snake
/// case (`operation_id`), which is not OpenAPI; they are renamed here.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        rename_link_fields(&mut document);
        document
    })
}

fn rename_link_fields(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            if let Some(serde_json::Value::Object(links)) = object.get_mut("links") {
                for link in links.values_mut().filter_map(serde_json::Value::as_object_mut) {
                    for (from, to) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(field) = link.remove(from) {
                            link.insert(to.to_string(), field);
                        }
                    }
                }
            }
            object.values_mut().for_each(rename_link_fields);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rename_link_fields),
        _ => {}
    }
}

/// The problems any route may answer with, added to every operation so that a
/// route added later is documented with them too: a JSON body that is not JSON,
/// too large or not sent as JSON (400, 413, 415); a path naming something that
/// is not there (404); a backend that is down (503, with `Retry-After`). What a
/// handler documents itself is kept as it wrote it.
struct CommonResponses;

/// The security scheme's name: `Authorization: Bearer <key>`.
const BEARER: &str = "bearer";

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            // These answer in OpenAI's error shape, not with problems.
            let error = match super::openai_compat::is_openai_route(path) {
                true => ("application/json", "OpenAiErrorResponse"),
                false => ("application/problem+json", "Problem"),
            };
            let add_problem = |operation: &mut Operation, status: u16, description: &str| {
                add_error(operation, status, description, error)
            };
            for operation in operations.into_iter().flatten() {
                let json_body = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|body| body.content.contains_key("application/json"));
                if json_body {
                    add_problem(operation, 400, "The body is not valid JSON");
                    add_problem(operation, 413, "The body is larger than the limit");
                    add_problem(operation, 415, "The body is not sent as `application/json`");
                }
                if path.contains('{') {
                    add_problem(operation, 404, "Not found");
                }
                if path.starts_with("/v1/") {
                    add_problem(operation, 503, "A backend is down; retry after `Retry-After` seconds");
                }
                if path.starts_with("/v1/") || path == "/metrics" {
                    operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                    add_problem(operation, 401, "No valid API key (`WWW-Authenticate: Bearer`)");
                    add_problem(operation, 403, "The key's role does not allow this");
                }
            }
        }
    }
}

/// `(content type, schema name)` of the error body.
fn add_error(operation: &mut Operation, status: u16, description: &str, (content_type, schema): (&str, &str)) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        content_type,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(schema)))
                            .build(),
                    )
                    .build(),
            )
        });
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Every operation of the document: its path, method and object.
    fn operations() -> impl Iterator<Item = (&'static str, &'static str, &'static Value)> {
        document()["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .map(move |(method, operation)| (path.as_str(), method.as_str(), operation))
            })
    }

    /// The path parameters of an operation.
    fn path_parameters(operation: &Value) -> impl Iterator<Item = &Value> {
        operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|parameter| parameter["in"] == "path")
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_their_operation_in_openapi_terms() {
        let mut ids = std::collections::HashSet::new();
        for (_, _, operation) in operations() {
            let id = operation["operationId"].as_str().expect("every operation has an id");
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        }
        let links = &document()["paths"]["/v1/collections/{collection}/documents"]["post"]["responses"]["202"]["links"];
        assert_eq!(links["job"]["operationId"], "get_job", "{links}");
        assert!(links["job"].get("operation_id").is_none(), "{links}");
        assert!(ids.contains(links["document"]["operationId"].as_str().unwrap()));
    }

    /// Each link names an existing operation and fills all of its path
    /// parameters, so that a client (or schemathesis's stateful phase) can follow it.
    #[test]
    fn every_link_fills_the_path_parameters_of_the_operation_it_names() {
        let by_id: std::collections::HashMap<&str, &Value> = operations()
            .map(|(_, _, operation)| (operation["operationId"].as_str().unwrap(), operation))
            .collect();
        let mut links = 0;
        for (_, _, operation) in operations() {
            for response in operation["responses"].as_object().unwrap().values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let target = by_id.get(target).unwrap_or_else(|| panic!("link {name}: no {target}"));
                    let filled = link["parameters"].as_object().unwrap();
                    for parameter in path_parameters(target) {
                        let wanted = parameter["name"].as_str().unwrap();
                        assert!(filled.contains_key(wanted), "link {name} leaves out {wanted}");
                    }
                }
            }
        }
        assert!(links >= 8, "{links} links");
    }

    /// A path's ids and names are declared as what the server parses (a uuid, a
    /// collection name), not as any string.
    #[test]
    fn path_ids_and_names_have_their_type() {
        let schemas = &document()["components"]["schemas"];
        for (path, method, operation) in operations() {
            for parameter in path_parameters(operation).filter(|p| p["name"] != "page") {
                let name = &parameter["name"];
                let reference = parameter["schema"]["$ref"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path}: {name} is {}", parameter["schema"]);
                });
                let schema = &schemas[reference.trim_start_matches("#/components/schemas/")];
                let declared = schema.get("format").or(schema.get("pattern"));
                assert!(declared.is_some(), "{method} {path}: {name} is {schema}");
            }
        }
    }

    #[test]
    fn every_json_route_documents_the_body_problems_and_every_v1_route_a_backend_outage() {
        for (path, method, operation) in operations() {
            let responses = operation["responses"].as_object().unwrap();
            if operation["requestBody"]["content"].get("application/json").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
            }
            if path.starts_with("/v1/") {
                assert!(responses.contains_key("503"), "{method} {path} lacks 503");
            }
        }
    }
}
