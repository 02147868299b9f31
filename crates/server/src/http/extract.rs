//! Extractors that turn every malformed request into a problem+json 4xx: JSON bodies (type,
//! syntax, unknown and missing fields, size), path ids, query strings, and the caller's identity
//! with CSRF protection for cookie-authenticated writes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::{Principal, Via};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "cw_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body, refused with a problem naming the field when it does not fit `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", e.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, reporting the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request body of this API is an object; serde would also read a struct from an array.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => {}
        Some(_) if serde_json::from_slice::<serde_json::Value>(bytes).is_ok() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not-an-object",
                "the body must be a JSON object",
            ));
        }
        Some(_) => {}
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let (code, status) = if inner.is_syntax() || inner.is_eof() {
            ("malformed-json", StatusCode::BAD_REQUEST)
        } else {
            ("invalid-field", StatusCode::UNPROCESSABLE_ENTITY)
        };
        // Unknown and missing fields name themselves in the message, not in the path.
        let named = ["unknown field `", "missing field `"].iter().find_map(|p| {
            message
                .split(p)
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        });
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => Some(name),
            (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => Some(p.to_owned()),
            (Some(name), p) => Some(format!("{p}.{name}")),
            (None, "." | "") => None,
            (None, p) => Some(p.to_owned()),
        };
        let mut err = ApiError::new(status, code, message);
        err.field = field;
        err
    })
}

/// A numeric id in the path.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-id",
                        "the id in the path is missing",
                    )
                })?;
        parse_id(&raw, "id").map(Id)
    }
}

/// An id taken from a path segment named `field`: a positive integer, else a 400 naming it.
pub fn parse_id(raw: &str, field: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-id",
            format!(
                "`{}` is not an id: ids are positive integers",
                raw.chars().take(40).collect::<String>()
            ),
        )
        .field(field)),
    }
}

/// A query string, refused with a problem when it does not fit `T`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", message);
                if path != "." {
                    err.field = Some(path);
                }
                err
            })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// The client's address.
pub struct Source(pub IpAddr);

/// The client's address: the connection's peer, or behind a trusted proxy the address it
/// forwarded (see [`crate::proxies`]). Login throttling and audit events use this one.
impl FromRequestParts<Arc<AppState>> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Source(state.proxies.client(peer, &parts.headers)))
    }
}

/// The signed-in caller. Cookie sessions must send the session's CSRF token in `X-CSRF-Token`
/// on every request that changes something.
pub struct Caller {
    pub principal: Arc<Principal>,
    pub source: IpAddr,
}

impl Caller {
    pub fn ctx(&self) -> crate::context::Ctx {
        self.principal.ctx(self.source.to_string())
    }
}

pub fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE).then_some(v)
        })
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Source(source) = Source::from_request_parts(parts, state)
            .await
            .unwrap_or(Source(IpAddr::from([127, 0, 0, 1])));
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .map(str::trim)
            });
        let (presented, by_cookie) = match bearer {
            Some(Some(token)) => (token.to_owned(), false),
            Some(None) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the Authorization header must be `Bearer TOKEN`",
                ));
            }
            None => match session_cookie(parts) {
                Some(c) => (c.to_owned(), true),
                None => return Err(ApiError::unauthenticated()),
            },
        };
        let principal = state
            .auth
            .resolve(&state.db, &presented)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the session or token is invalid, expired or revoked: sign in again",
                )
            })?;
        if by_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let Via::Session { csrf, .. } = &principal.via else {
                return Err(ApiError::unauthenticated());
            };
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf-failed",
                    "send the session's CSRF token in the X-CSRF-Token header (from the login answer or GET /api/v1/auth/session)",
                ));
            }
        }
        Ok(Caller { principal, source })
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
