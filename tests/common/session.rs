//! A signed-in browser session driven over HTTP: the session cookie and its CSRF token on every
//! request (what impersonation and the other session-only routes need; API tokens are bearers).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::TestApp;

pub struct Session<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

impl<'a> Session<'a> {
    /// Signs in with a password.
    pub async fn login(app: &'a TestApp, username: &str, password: &str) -> Session<'a> {
        let (cookie, csrf) = app.login(username, password).await;
        Session { app, cookie, csrf }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.url))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        )
    }
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
}
