//! `/docs`: the API reference (Swagger UI) for people, served from assets
//! built into the binary (`assets/docs`, swagger-ui-dist 5.35.0, Apache-2.0)
//! under a strict Content Security Policy: no script but these files, nothing
//! fetched from another site, no page may frame it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>docqa API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="docs"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

/// Not inline: the policy allows no inline script.
const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  tryItOutEnabled: false
});
"##;

const BUNDLE: &[u8] = include_bytes!("../../assets/docs/swagger-ui-bundle.js");
const STYLES: &[u8] = include_bytes!("../../assets/docs/swagger-ui.css");

/// Scripts from this server only; styles from it too, and inline ones (Swagger
/// UI sets some); images inline or from it; calls only to it.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/docs", web::get().to(page))
        .route("/docs/", web::get().to(page))
        .route(
            "/docs/init.js",
            web::get().to(|| asset(INIT.as_bytes(), "text/javascript; charset=utf-8")),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            web::get().to(|| asset(BUNDLE, "text/javascript; charset=utf-8")),
        )
        .route(
            "/docs/swagger-ui.css",
            web::get().to(|| asset(STYLES, "text/css; charset=utf-8")),
        );
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(PAGE)
}

async fn asset(bytes: &'static [u8], content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        // The files change only with the binary.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .body(bytes)
}
