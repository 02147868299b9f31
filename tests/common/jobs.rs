//! Following a job through the API: until a condition holds, and its log.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestApp;

/// Polls a job until `done` says so (or 90 s pass): the condition, not a fixed delay, ends the wait.
pub async fn wait_job(app: &TestApp, token: &str, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (s, v) = app.get(&format!("/api/v1/jobs/{id}"), token).await;
        assert_eq!(s, reqwest::StatusCode::OK, "{v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "job {id} never got there: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job has ended (completed, failed or killed).
pub fn terminal(v: &Value) -> bool {
    matches!(v["status"].as_str(), Some("completed" | "failed" | "killed"))
}

/// The job's log as its reader gets it.
pub async fn log_of(app: &TestApp, token: &str, id: i64) -> String {
    let (s, v) = app.get(&format!("/api/v1/jobs/{id}/log"), token).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{v}");
    v["text"].as_str().unwrap_or_default().to_owned()
}
