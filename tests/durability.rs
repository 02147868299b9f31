//! Nothing acknowledged is lost: while a client creates 1,000 users, the server is killed with
//! SIGKILL at a random moment and restarted; every creation answered 2xx is there afterwards,
//! and the audit chain verifies.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::process::{Server, run, stdout};
use common::{Backend, fresh_database};
use rand::Rng;
use serde_json::{Value, json};

const PASSWORD: &str = "durability passphrase 1";
const USERS: usize = 1000;
const CLIENTS: usize = 4;

async fn create_all(
    url: String,
    token: String,
    pending: Arc<Mutex<Vec<usize>>>,
    acked: Arc<Mutex<BTreeSet<String>>>,
) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, token, pending, acked) = (
            http.clone(),
            url.clone(),
            token.clone(),
            pending.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(i) = pending.lock().unwrap().pop() else {
                    return;
                };
                let name = format!("user{i:04}");
                let body = json!({ "username": name, "email": format!("{name}@lab.example") });
                match http
                    .post(format!("{url}/api/v1/users"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().insert(name);
                    }
                    // Committed before a crash whose answer was lost: it exists, never acknowledged.
                    Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {}
                    Ok(r) => panic!("unexpected answer {} for {name}", r.status()),
                    Err(_) => {
                        // The server went away mid-request: not acknowledged; try again later.
                        pending.lock().unwrap().push(i);
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn existing_usernames(url: &str, token: &str) -> BTreeSet<String> {
    let http = reqwest::Client::new();
    let mut names = BTreeSet::new();
    for page in 1.. {
        let v: Value = http
            .get(format!("{url}/api/v1/users?per_page=500&page={page}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let users = v["users"].as_array().unwrap();
        if users.is_empty() {
            break;
        }
        names.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
    }
    names
}

async fn login(url: &str) -> String {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "username": "head", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session: Value = resp.json().await.unwrap();
    let created: Value = http
        .post(format!("{url}/api/v1/tokens"))
        .header("cookie", cookie)
        .header("x-csrf-token", session["csrf_token"].as_str().unwrap())
        .json(&json!({ "name": "durability" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = fresh_database(backend, dir.path()).await else {
        return;
    };
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let boot = run(
        &[
            "admin",
            "bootstrap",
            "--data-dir",
            data_s,
            "--database-url",
            &database_url,
            "--username",
            "head",
            "--email",
            "head@f.example",
            "--password-stdin",
        ],
        PASSWORD,
        &[],
    );
    assert!(
        boot.status.success(),
        "{}",
        String::from_utf8_lossy(&boot.stderr)
    );

    let server = Server::start(&data, Some(&database_url));
    let token = login(&server.url).await;
    let pending = Arc::new(Mutex::new((0..USERS).rev().collect::<Vec<_>>()));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let kill_at = rand::rng().random_range(50..USERS * 3 / 4);
    // Create until `kill_at` are acknowledged, with requests still in flight, then SIGKILL.
    let creating = tokio::spawn(create_all(
        server.url.clone(),
        token.clone(),
        pending.clone(),
        acked.clone(),
    ));
    loop {
        tokio::task::yield_now().await;
        if acked.lock().unwrap().len() >= kill_at {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    server.kill9();
    creating.await.unwrap();
    let acked_before_kill = acked.lock().unwrap().clone();
    assert!(acked_before_kill.len() >= kill_at);

    let server = Server::start(&data, Some(&database_url));
    let present = existing_usernames(&server.url, &token).await;
    let lost: Vec<_> = acked_before_kill.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "acknowledged before SIGKILL but missing after restart: {lost:?}"
    );

    // Finish the rest; the pending ones that were in fact committed answer 409 and exist.
    create_all(
        server.url.clone(),
        token.clone(),
        pending.clone(),
        acked.clone(),
    )
    .await;
    let present = existing_usernames(&server.url, &token).await;
    assert_eq!(
        present.len(),
        USERS + 1,
        "every user exists exactly once, plus the admin"
    );
    assert!(acked.lock().unwrap().is_subset(&present));
    drop(server);

    let verify = run(
        &[
            "audit",
            "verify",
            "--data-dir",
            data_s,
            "--database-url",
            &database_url,
        ],
        "",
        &[],
    );
    let text = stdout(&verify);
    assert!(verify.status.success(), "{text}");
    let events: usize = text
        .trim()
        .trim_start_matches("ok, ")
        .trim_end_matches(" events")
        .parse()
        .unwrap();
    assert!(events > USERS, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_sqlite() {
    acknowledged_writes_survive_sigkill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_postgres() {
    acknowledged_writes_survive_sigkill(Backend::Postgres).await;
}
