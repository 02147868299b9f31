//! Following a job through the API: until a condition holds, and its log.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::TestApp;
use super::world::{World, create_project, world};

/// The suite's world and alice's project `apoferritin` in lab 1 (its id).
pub async fn setup(app: &TestApp) -> (World, i64) {
    let w = world(app).await;
    let p = create_project(app, &w.alice.1, w.lab1, "apoferritin").await;
    (w, p["id"].as_i64().unwrap())
}

/// Creates a job in `project` from `body` (its type and parameters); its id.
pub async fn job(app: &TestApp, token: &str, project: i64, body: Value) -> i64 {
    let mut body = body;
    body["project_id"] = json!(project);
    let (s, v) = app.post("/api/v1/jobs", token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_i64().unwrap()
}

/// Queues a job; the answer as it comes.
pub async fn queue(app: &TestApp, token: &str, id: i64, body: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/jobs/{id}/queue"), token, body)
        .await
}

/// Polls a job until `done` says so (or 90 s pass): the condition, not a fixed delay, ends the wait.
pub async fn wait_job(app: &TestApp, token: &str, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (s, v) = app.get(&format!("/api/v1/jobs/{id}"), token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "job {id} never got there: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job has ended (completed, failed or killed).
pub fn terminal(v: &Value) -> bool {
    matches!(
        v["status"].as_str(),
        Some("completed" | "failed" | "killed")
    )
}

/// The job's log as its reader gets it.
pub async fn log_of(app: &TestApp, token: &str, id: i64) -> String {
    let (s, v) = app.get(&format!("/api/v1/jobs/{id}/log"), token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["text"].as_str().unwrap_or_default().to_owned()
}
