//! The pages skiff itself answers with in the browser (not found, the app is down, the
//! app failed to start), so a developer sees the problem where they are looking.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page: a title, a paragraph of (plain) text, and optional preformatted detail
/// such as a traceback or a process's last output lines.
pub fn page(
    status: StatusCode,
    title: &str,
    message: &str,
    detail: Option<&str>,
) -> Response<Body> {
    let detail = detail
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!("<pre>{}</pre>\n", escape(d)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}\
         pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head>\n\
         <body><h1>{title}</h1>\n<p>{message}</p>\n{detail}\
         <p><small>skiff serve</small></p></body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 301 to `location`.
pub fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
