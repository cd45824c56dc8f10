//! `/`: the page for people (upload, watch, ask, see the quote on its page),
//! served from files built into the binary (`assets/web`; pdf.js from
//! `pdfjs-dist`, Apache-2.0, see `assets/web/pdfjs/README.md`). It calls the
//! public API like any client, so it gets no right of its own.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

/// This server's scripts, styles, workers and calls only; pages rendered into
/// canvases and images from `blob:` URLs; nothing inline, nothing framed.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' blob: data:; font-src 'self' data:; connect-src 'self'; worker-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

const PAGE: Asset = Asset {
    path: "/",
    bytes: include_bytes!("../../assets/web/index.html"),
    content_type: "text/html; charset=utf-8",
};

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/ui/app.js",
        bytes: include_bytes!("../../assets/web/app.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        path: "/ui/app.css",
        bytes: include_bytes!("../../assets/web/app.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        path: "/ui/pdf.min.mjs",
        bytes: include_bytes!("../../assets/web/pdfjs/pdf.min.mjs"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        path: "/ui/pdf.worker.min.mjs",
        bytes: include_bytes!("../../assets/web/pdfjs/pdf.worker.min.mjs"),
        content_type: "text/javascript; charset=utf-8",
    },
];

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/", web::get().to(|request: HttpRequest| serve(request, 0)));
    let mut ui = web::scope("/ui").wrap(Compress::default());
    for (index, asset) in ASSETS.iter().enumerate() {
        let path = asset.path.trim_start_matches("/ui");
        ui = ui.route(
            path,
            web::get().to(move |request: HttpRequest| serve(request, index + 1)),
        );
    }
    config.service(ui);
}

/// `index` 0 is the page, then [`ASSETS`] in order.
async fn serve(request: HttpRequest, index: usize) -> HttpResponse {
    let asset = if index == 0 { &PAGE } else { &ASSETS[index - 1] };
    let etag = &etags()[index];
    let unchanged = matches_etag(&request, etag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.clone()))
        // Checked on every load (a 304 when unchanged): a new binary's files
        // are never mixed with an old one's.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
    if index == 0 {
        response
            .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)))
            .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    }
    if unchanged {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.bytes)
}

/// A strong ETag per file (its hash), computed once.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        std::iter::once(&PAGE)
            .chain(ASSETS.iter())
            .map(|asset| {
                let digest = Sha256::digest(asset.bytes);
                HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

fn matches_etag(request: &HttpRequest, etag: &HeaderValue) -> bool {
    request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag.to_str().unwrap_or_default())
        })
}
