//! Every request gets an id: taken from `x-request-id` if the caller sent a sane
//! one, else made up. It is in the response header, in the log span and in
//! every problem body.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, or `-` outside of one.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_string())
}

/// Runs `future` (a task spawned for a request) under that request's id.
pub async fn scope<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

fn from_caller(req: &ServiceRequest) -> Option<String> {
    let raw = req.headers().get(HEADER)?.to_str().ok()?;
    let sane = (1..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| raw.to_string())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = from_caller(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    let metrics = req.app_data::<actix_web::web::Data<crate::health::Metrics>>().cloned();
    let result = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let mut response = result?;
    let status = response.status();
    if let Some(metrics) = metrics {
        metrics.record(status.as_u16(), started.elapsed());
    }
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request done")
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}
