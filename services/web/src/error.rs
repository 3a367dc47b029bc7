//! One error type for the handlers: each variant maps to a status, and the cause chain
//! of an unexpected error goes to the log, never to the caller.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No token, or one that does not verify: 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Outside the caller's scope or absent: 404, indistinguishable by design.
    #[error("not found")]
    NotFound,
    /// A malformed query or path value: 400, naming the parameter.
    #[error("{0}")]
    BadRequest(String),
    /// The caller's role may not do this: 403.
    #[error("forbidden for this role")]
    Forbidden,
    /// It exists already: 409, naming what.
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Unexpected(err) = self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized(_) = self {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}
