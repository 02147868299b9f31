//! Every API exchange the suite makes, checked against the OpenAPI document the server serves, so
//! that the document cannot drift from what the handlers do: a layer around the test server's
//! router looks up the operation of each `/api/v1` request and checks that
//! - the answer's status is documented for it (or by a `default` response),
//! - its content type is one the document lists for that status,
//! - a JSON answer is valid against the documented schema (JSON Schema 2020-12, with the
//!   document's components), and
//! - the JSON body of an accepted (2xx) request is valid against the documented request body.
//!
//! A contradiction is recorded on the [`TestApp`](super::TestApp) and fails the test when the app
//! is dropped, naming the request, the answer and what the document says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};

/// The contradictions seen by one test server.
pub type Violations = Arc<Mutex<Vec<String>>>;

/// Largest body the layer buffers to check (JSON answers of the suite are far smaller).
const MAX_CHECKED_BODY: usize = 64 << 20;

/// The document, and a validator per schema location, compiled on first use.
pub struct Document {
    spec: Value,
    /// (method, path template split on `/`, the template).
    operations: Vec<(String, Vec<String>, String)>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The document of this build (the same the server serves at `/api/v1/openapi.json`).
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let spec =
            serde_json::to_value(cryowarden_server::api::openapi()).expect("the document is JSON");
        let mut operations = Vec::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            let methods = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            for method in item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| methods.contains(&k.as_str()))
            {
                let segments = path.split('/').map(str::to_owned).collect();
                operations.push((method.to_uppercase(), segments, path.clone()));
            }
        }
        Document {
            spec,
            operations,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

impl Document {
    pub fn spec(&self) -> &Value {
        &self.spec
    }

    /// The template of the operation that serves `method path` (the most literal match).
    pub fn operation(&self, method: &str, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(|(m, template, _)| {
                m == method
                    && template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
            })
            .min_by_key(|(_, template, _)| template.iter().filter(|t| t.starts_with('{')).count())
            .map(|(_, _, path)| path.as_str())
    }

    /// A validator of the schema at `pointer` in the document (its `$ref`s resolved against the
    /// document's components).
    fn validator(&self, pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
        if let Some(v) = self.validators.lock().unwrap().get(pointer) {
            return Ok(v.clone());
        }
        let schema = self
            .spec
            .pointer(pointer)
            .ok_or_else(|| format!("no schema at {pointer}"))?;
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.spec["components"],
            "allOf": [schema],
        });
        let validator = Arc::new(
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .map_err(|e| format!("the schema at {pointer} does not compile: {e}"))?,
        );
        self.validators
            .lock()
            .unwrap()
            .insert(pointer.to_owned(), validator.clone());
        Ok(validator)
    }

    /// Whether the schema at `pointer` compiles (its references resolve).
    pub fn check_schema_compiles(&self, pointer: &str) -> Result<(), String> {
        self.validator(pointer).map(|_| ())
    }

    fn validate(&self, pointer: &str, instance: &Value) -> Result<(), String> {
        let validator = self.validator(pointer)?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .take(5)
            .map(|e| format!("{} at `{}`", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// What the document says against one exchange, if anything.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        request: Option<&Value>,
        status: u16,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<(), String> {
        let Some(template) = self.operation(method, path) else {
            // 404 and 405 for routes that do not exist are the router's, not an operation's.
            return if matches!(status, 404 | 405) {
                Ok(())
            } else {
                Err(format!(
                    "{method} {path} answered {status}, but the document has no such operation"
                ))
            };
        };
        let op_pointer = format!("/paths/{}/{}", escape(template), method.to_lowercase());
        let responses = &self.spec.pointer(&op_pointer).expect("operation")["responses"];
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        let key = [code.as_str(), class.as_str(), "default"]
            .into_iter()
            .find(|k| responses.get(*k).is_some())
            .ok_or_else(|| {
                format!("{method} {template} answered {status}, which the document does not list")
            })?;
        let response_pointer = format!("{op_pointer}/responses/{key}");
        let content = &self.spec.pointer(&response_pointer).expect("response")["content"];
        let media =
            content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase());
        let empty = body.is_some_and(<[u8]>::is_empty);
        match (&media, content.as_object()) {
            (None, _) if empty => {}
            (None, None) => {}
            (Some(media), Some(listed)) if listed.contains_key(media.as_str()) => {
                let json_media = media == "application/json" || media.ends_with("+json");
                let schema = format!("{response_pointer}/content/{}/schema", escape(media));
                if let (true, Some(bytes), Some(_)) = (json_media, body, self.spec.pointer(&schema))
                {
                    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
                        format!("{method} {template} {status}: the {media} body is not JSON: {e}")
                    })?;
                    self.validate(&schema, &value).map_err(|e| {
                        format!("{method} {template} answered {status} with a body the document's schema refuses: {e}\n  body: {}", clip(&value))
                    })?;
                }
            }
            (media, listed) => {
                let listed: Vec<&String> = listed.map(|l| l.keys().collect()).unwrap_or_default();
                return Err(format!(
                    "{method} {template} answered {status} as {}, where the document lists {listed:?}",
                    media.as_deref().unwrap_or("no content type")
                ));
            }
        }
        if let (Some(request), true) = (request, (200..300).contains(&status)) {
            let schema = format!("{op_pointer}/requestBody/content/application~1json/schema");
            // An operation that takes no body ignores an empty one (`{}`), as clients send.
            let empty =
                request.is_null() || request.as_object().is_some_and(serde_json::Map::is_empty);
            if self.spec.pointer(&schema).is_none() && empty {
                return Ok(());
            }
            if self.spec.pointer(&schema).is_none() {
                return Err(format!(
                    "{method} {template} accepted a JSON body the document does not describe"
                ));
            }
            self.validate(&schema, request).map_err(|e| {
                format!(
                    "{method} {template} accepted a request body the document's schema refuses: {e}\n  body: {}",
                    clip(request)
                )
            })?;
        }
        Ok(())
    }
}

/// A JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn clip(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 600 {
        format!("{}…", &text[..text.floor_char_boundary(600)])
    } else {
        text
    }
}

/// The layer: checks each `/api/v1` exchange and records what contradicts the document.
pub async fn check_exchange(violations: Violations, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json" {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_CHECKED_BODY)
        .await
        .unwrap_or_default();
    let sent: Option<Value> = if is_json {
        serde_json::from_slice(&bytes).ok()
    } else {
        None
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let buffered =
        content_type.as_deref().is_some_and(|c| c.contains("json")) || content_type.is_none();
    let (response, body): (Response, Option<Bytes>) = if buffered {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_CHECKED_BODY)
            .await
            .unwrap_or_default();
        (
            Response::from_parts(parts, Body::from(bytes.clone())),
            Some(bytes),
        )
    } else {
        // Streams (CSV, zip, text) are checked by their content type only.
        (response, None)
    };
    if let Err(e) = document().check(
        &method,
        &path,
        sent.as_ref(),
        status,
        content_type.as_deref(),
        body.as_deref(),
    ) {
        eprintln!("OpenAPI: {e}");
        violations.lock().unwrap().push(e);
    }
    response
}
