//! A streamed file download: the body, its content type and the attachment's file name.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;

/// `stream` as an attachment named `file_name` of type `content_type`.
pub fn attachment(
    content_type: &'static str,
    file_name: &str,
    stream: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Response {
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
