//! The reverse proxy from the front to the runtime process on its loopback port, the
//! way NGINX hands requests to Apache on a node: the request's own `Host`, plus
//! `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, Version, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::runtime::CHILD_HOST;

/// The HTTP client the front forwards with (one, pooled, for the whole session).
pub type ProxyClient = Client<HttpConnector, Body>;

/// A new client for [`forward`].
pub fn client() -> ProxyClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Headers that describe one hop, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Why a request could not be handed to the app.
#[derive(Debug)]
pub struct ProxyError(pub String);

/// Sends `req` to the runtime process on `port` and returns its response as it streams.
pub async fn forward(
    client: &ProxyClient,
    port: u16,
    peer: SocketAddr,
    mut req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let uri: Uri = format!("http://{CHILD_HOST}:{port}{path_and_query}")
        .parse()
        .map_err(|e| ProxyError(format!("bad request path: {e}")))?;
    // HTTP/2 carries the host in the URI, not in a header.
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if let Some(host) = host {
        headers.insert(header::HOST, host.clone());
        headers.insert("x-forwarded-host", host);
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    let response = client
        .request(req)
        .await
        .map_err(|e| ProxyError(describe(&e)))?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The error and its causes on one line ("client error (Connect): tcp connect error: ...").
fn describe(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
