//! A stored document file as an HTTP response: `actix-files` answers ranges,
//! `If-None-Match` and `If-Modified-Since`; this decides how it is shown.

use actix_files::NamedFile;
use actix_web::http::header::{
    self, ContentDisposition, DispositionParam, DispositionType, ExtendedValue, HeaderValue,
};
use actix_web::{HttpRequest, HttpResponse};

use super::problem::AppError;
use crate::domain::ContentType;
use crate::service::documents::StoredFile;

/// No script, style or request of its own, in a sandbox: a file that a
/// browser would render as a page (HTML, SVG in disguise) stays inert.
const FILE_POLICY: &str = "default-src 'none'; sandbox";

pub fn response(stored: StoredFile, request: &HttpRequest) -> Result<HttpResponse, AppError> {
    let document = stored.document;
    let mime: actix_web::mime::Mime = document
        .content_type
        .mime()
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM);
    let shown_inline = matches!(
        document.content_type,
        ContentType::Pdf | ContentType::Png | ContentType::Jpeg | ContentType::Webp
    );
    let disposition = ContentDisposition {
        disposition: if shown_inline {
            DispositionType::Inline
        } else {
            DispositionType::Attachment
        },
        parameters: vec![
            DispositionParam::Filename(ascii_fallback(&document.filename)),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: header::Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: document.filename.clone().into_bytes(),
            }),
        ],
    };
    let file = NamedFile::from_file(stored.file, &stored.path)
        .map_err(|e| AppError::Internal(format!("stored file of {}: {e}", document.id)))?
        .set_content_type(mime)
        // The type as recognised; the bytes are as uploaded, in whatever encoding.
        .prefer_utf8(false)
        .set_content_disposition(disposition);
    let mut response = file.into_response(request);
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Private to the caller, checked again every time (its access may change).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if !shown_inline {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_POLICY));
    }
    Ok(response)
}

/// The `filename=` for old clients: the name with anything outside printable
/// ASCII (and quotes, backslashes) as `_`; `filename*` carries the real one.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ascii_fallback;

    #[test]
    fn the_ascii_filename_replaces_what_a_header_cannot_hold() {
        assert_eq!(ascii_fallback("Rapport été \"2026\".pdf"), "Rapport _t_ _2026_.pdf");
        assert_eq!(ascii_fallback("plain-name_1.pdf"), "plain-name_1.pdf");
    }
}
