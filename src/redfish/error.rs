//! Errors of the Redfish server: [`RedfishError`] for starting it, [`ApiError`] for the
//! Redfish-shaped error responses clients get.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Prefix of the DMTF Base message registry the messages come from.
pub const BASE: &str = "Base.1.8.1";

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedfishError {
    /// The socket could not be bound or served.
    #[error("cannot serve Redfish on {addr}")]
    Serve {
        /// Address and port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file could not be read or written.
    #[error("{path}")]
    CertFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("cannot generate the self-signed certificate")]
    CertGen(#[source] rcgen::Error),
    /// The media directory could not be prepared.
    #[error("cannot prepare the virtual media directory {path}")]
    MediaDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for virtual media could not be built.
    #[error("cannot set up the virtual media client")]
    MediaClient(#[source] std::io::Error),
}

/// A Redfish error response: status, one message of the Base registry, and the allowed
/// methods for a 405.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message id within the Base registry, e.g. `PropertyValueNotInList`.
    pub id: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The registry message's arguments.
    pub args: Vec<String>,
    /// JSON pointers of the properties concerned.
    pub related: Vec<String>,
    /// `Allow` header value, for 405.
    pub allow: Option<String>,
    /// `WWW-Authenticate` challenge, for 401.
    pub challenge: bool,
}

impl ApiError {
    /// An error with `status`, message id and text.
    pub fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            message: message.into(),
            args: vec![],
            related: vec![],
            allow: None,
            challenge: false,
        }
    }

    /// Adds the message arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a related property (JSON pointer such as `#/Boot/BootSourceOverrideTarget`).
    pub fn related(mut self, pointer: impl Into<String>) -> Self {
        self.related.push(pointer.into());
        self
    }

    /// 404 for a resource that does not exist (or is not the caller's).
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The resource at {path} was not found."),
        )
        .args(["Resource", path])
    }

    /// 401: no or wrong credentials.
    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "There is no valid session established with the implementation: send HTTP Basic credentials or an X-Auth-Token.",
        );
        e.challenge = true;
        e
    }

    /// 405 with the methods the resource allows.
    pub fn method_not_allowed(method: &str, allow: &str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "GeneralError",
            format!("The method {method} is not allowed on this resource; allowed: {allow}."),
        );
        e.allow = Some(allow.to_string());
        e
    }

    /// 400: the body is not JSON (or not an object).
    pub fn malformed_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
            format!(
                "The request body submitted was malformed JSON and could not be parsed by the receiving service: {detail}."
            ),
        )
    }

    /// 500 with a cause that is safe to show (never a secret).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!(
                "The request failed due to an internal service error: {detail}. The service is still operational."
            ),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let severity = if self.status.is_server_error() {
            "Critical"
        } else {
            "Warning"
        };
        let mut info = json!({
            "@odata.type": "#Message.v1_1_2.Message",
            "MessageId": format!("{BASE}.{}", self.id),
            "Message": self.message,
            "MessageArgs": self.args,
            "MessageSeverity": severity,
            "Severity": severity,
            "Resolution": resolution(self.status),
        });
        if !self.related.is_empty() {
            info["RelatedProperties"] = json!(self.related);
        }
        json!({
            "error": {
                "code": format!("{BASE}.{}", self.id),
                "message": self.message,
                "@Message.ExtendedInfo": [info],
            }
        })
    }
}

fn resolution(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => {
            "Log in with the credentials of the Vino that owns the system, or use HTTP Basic authentication."
        }
        StatusCode::NOT_FOUND => {
            "Check the URI; a system is visible only with its Vino's credentials."
        }
        StatusCode::METHOD_NOT_ALLOWED => "Use one of the methods in the Allow header.",
        StatusCode::PRECONDITION_FAILED => {
            "Read the resource again and retry with its current ETag."
        }
        s if s.is_server_error() => "Retry the request; if it fails again, see vinod's log.",
        _ => "Correct the request body and resubmit the request.",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        let h = resp.headers_mut();
        h.insert("OData-Version", HeaderValue::from_static("4.0"));
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            h.insert(header::ALLOW, allow);
        }
        if self.challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vinod\""),
            );
        }
        resp
    }
}
