//! Every request gets an id: taken from `x-request-id` if the caller sent a sane
//! one, else made up. It is in the response header, in the log span and in
//! every problem body.

use std::panic::AssertUnwindSafe;

use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use futures_util::FutureExt;
use tracing::Instrument;

use super::problem::AppError;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, or `-` outside of one.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_string())
}

/// Runs `future` (a task spawned for a request) under that request's id.
pub async fn scope<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

fn from_caller(req: &ServiceRequest) -> Option<String> {
    let raw = req.headers().get(HEADER)?.to_str().ok()?;
    let sane = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| raw.to_string())
}

/// Gives the request its id, logs and counts it, and turns a panic in a handler
/// into a 500 problem that carries the id (the server goes on).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = from_caller(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    let metrics = req.app_data::<actix_web::web::Data<crate::health::Metrics>>().cloned();
    let handled = AssertUnwindSafe(next.call(req)).catch_unwind();
    let result = REQUEST_ID.scope(id.clone(), handled.instrument(span.clone())).await;
    let mut response = match result {
        Ok(response) => response?.map_into_boxed_body(),
        Err(panic) => {
            // The request went with the unwinding handler: the problem goes out as
            // an error that carries its finished response.
            let error = AppError::Internal(format!(
                "handler panicked: {}",
                crate::background::panic_message(&*panic)
            ));
            let mut response = REQUEST_ID.sync_scope(id.clone(), || error.error_response());
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(HeaderName::from_static(HEADER), value);
            }
            if let Some(metrics) = metrics {
                metrics.record(response.status().as_u16(), started.elapsed());
            }
            return Err(actix_web::error::InternalError::from_response(error.to_string(), response).into());
        }
    };
    let status = response.status();
    if let Some(metrics) = metrics {
        metrics.record(status.as_u16(), started.elapsed());
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request done"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use actix_web::dev::Service;
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};

    use super::*;

    async fn boom() -> HttpResponse {
        panic!("a bug")
    }

    #[actix_web::test]
    async fn a_panicking_handler_is_a_500_problem_with_the_request_id_and_the_server_goes_on() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(middleware))
                .route("/boom", web::get().to(boom))
                .route("/ok", web::get().to(|| async { HttpResponse::Ok().finish() })),
        )
        .await;
        let request = test::TestRequest::get()
            .uri("/boom")
            .insert_header((HEADER, "req-42"))
            .to_request();
        let error = app
            .call(request)
            .await
            .expect_err("the panic becomes an error response");
        let response = error.error_response();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers().get(HEADER).unwrap(), "req-42");
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["request_id"], "req-42", "{problem}");
        assert_eq!(problem["type"], "/problems/internal", "{problem}");
        assert!(
            !problem["detail"].as_str().unwrap().contains("a bug"),
            "internals stay in the log: {problem}"
        );

        let ok = test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert_eq!(ok.status(), 200);
    }
}
