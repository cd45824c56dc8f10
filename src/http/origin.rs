//! Requests a browser was tricked into sending. `ALLOWED_HOSTS` refuses a
//! `Host` this server does not answer to (DNS rebinding: a page of another site
//! whose name now points at 127.0.0.1), and a state-changing request whose
//! `Origin` is neither this server nor one of `CORS_ALLOWED_ORIGINS` is refused
//! (a form or script of another site posting to a local instance without keys).
//! Requests without `Origin` (curl, SDKs, servers) are not browsers' and pass.

use actix_web::ResponseError as _;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::Data;

use super::problem::AppError;
use crate::config::{AllowedHosts, CorsOrigins};

/// What the middleware checks against, from the settings.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    pub hosts: AllowedHosts,
    pub cors: CorsOrigins,
}

impl OriginPolicy {
    fn check(&self, req: &ServiceRequest) -> Result<(), AppError> {
        // The raw `Host` (HTTP/1.1) or `:authority` (HTTP/2): never a forwarding
        // header, which a rebinding page could set to anything.
        let authority = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let host = host_name(&authority);
        if !self.hosts.allows(host) {
            return Err(AppError::HostNotAllowed(host.chars().take(100).collect()));
        }
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("(not text)");
        let same_origin = origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&authority));
        let listed = match &self.cors {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            CorsOrigins::None => false,
        };
        if same_origin || listed {
            Ok(())
        } else {
            Err(AppError::CrossOrigin(origin.chars().take(100).collect()))
        }
    }
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`.
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Refuses what [`OriginPolicy`] does not allow, before any handler runs.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = req
        .app_data::<Data<OriginPolicy>>()
        .and_then(|policy| policy.check(&req).err());
    if let Some(error) = refused {
        return Ok(req.into_response(error.error_response()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn the_port_is_not_part_of_the_name() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("kb.example"), "kb.example");
    }
}
