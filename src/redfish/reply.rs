//! Successful responses: JSON with the headers Redfish wants (ETag, Allow, OData-Version,
//! Cache-Control, Link to the schema) and conditional GET; XML; 204.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::target::Target;

/// Strong ETag of a representation.
pub fn etag(body: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(body).unwrap_or_default());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) fn json(body: Value, target: &Target, request: &HeaderMap) -> Response {
    let tag = etag(&body);
    let schema = body["@odata.type"]
        .as_str()
        .and_then(|t| t.strip_prefix('#'))
        .and_then(|t| t.rsplit_once('.'))
        .map(|(schema, _)| {
            format!("<http://redfish.dmtf.org/schemas/v1/{schema}.json>; rel=describedby")
        });
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|w| w == "*" || w.trim_start_matches("W/") == tag)
        });
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut r = Response::new(Body::from(bytes));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, header_value(&tag));
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(header::ALLOW, HeaderValue::from_static(target.allow()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(link) = schema {
        h.insert(header::LINK, header_value(&link));
    }
    resp
}

pub(super) fn xml(text: String) -> Response {
    let mut resp = Response::new(Body::from(text));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

pub(super) fn no_content() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    resp
}
