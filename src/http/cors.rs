//! Cross-origin requests from the browser apps named in `CORS_ALLOWED_ORIGINS`
//! (none by default: browsers then refuse cross-origin calls, as before).
//! Keys travel in `Authorization`, never in cookies, so no credentials mode.

use actix_cors::Cors;
use actix_web::http::{Method, header};
use actix_web::middleware::Condition;

use crate::config::CorsOrigins;

/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: usize = 3600;

/// The CORS middleware for these origins; a no-op when there are none.
pub fn middleware(origins: &CorsOrigins) -> Condition<Cors> {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-acting-for"),
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::LOCATION,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(PREFLIGHT_MAX_AGE_SECS);
    match origins {
        CorsOrigins::None => {}
        CorsOrigins::Any => cors = cors.allow_any_origin(),
        CorsOrigins::List(list) => {
            for origin in list {
                cors = cors.allowed_origin(origin);
            }
        }
    }
    Condition::new(*origins != CorsOrigins::None, cors)
}
