//! Lanes and jobs in a real headless Chromium, with the labs' real Unix accounts, the real runner
//! and the real scheduler: the Site Admin denies lane `default` to alice on the Lane Restrictions
//! tab, so her attempt to queue a validation job from her project's page is refused with the
//! API's reason; the admin allows it again, and her job runs to `completed` with its log followed
//! on the page. On the Cluster Configuration tab the admin gives a target's custom variable an
//! instance-wide value and then the target's own; on Current Jobs a job held by maintenance
//! appears by itself and is killed from its row. Screenshots of each tab go to test-artifacts/.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Driver, find, screenshot, wait_text};
use common::world::{create_project, world};
use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::json;

async fn sign_in(c: &Client, app: &TestApp, username: &str, password: &str) {
    c.goto(&format!("{}/login", app.url)).await.unwrap();
    find(c, "#username")
        .await
        .send_keys(username)
        .await
        .unwrap();
    find(c, "#password")
        .await
        .send_keys(password)
        .await
        .unwrap();
    find(c, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(c, "nav.side").await;
}

/// Like `wait_text`, for what takes a job's run: up to 90 s, polling the page (the condition, not
/// a fixed delay, ends the wait).
async fn wait_long(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
            && ok(&text)
        {
            return text;
        }
        let last = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => "(absent)".into(),
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the text of {css}; it is: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scrolls the project page's Jobs section into view, for the screenshot.
async fn show_jobs(c: &Client) {
    c.execute(
        "document.getElementById('project-jobs').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_lane_refuses_the_queue_and_an_allowed_one_runs_the_validation_job() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let project = create_project(&app, &w.alice.1, w.lab1, "apoferritin").await["id"]
        .as_i64()
        .unwrap();

    // alice opens her project: the validation form offers the lanes she may queue to.
    let user = driver.browser().await;
    sign_in(&user, &app, "alice", USER_PASSWORD).await;
    user.goto(&format!("{}/projects/{project}", app.url))
        .await
        .unwrap();
    let lane = find(&user, "#validation-lane").await;
    assert_eq!(
        lane.prop("value").await.unwrap().as_deref(),
        Some("default")
    );
    wait_text(&user, "#project-jobs-empty", |t| t == "No jobs yet.").await;

    // The Site Admin finds alice on the Lane Restrictions tab and moves `default` to Not allowed.
    let admin = driver.browser().await;
    sign_in(&admin, &app, "root-admin", ADMIN_PASSWORD).await;
    find(&admin, "nav.side a.key").await.click().await.unwrap();
    find(&admin, "nav.tabs a[href='/admin/lanes']")
        .await
        .click()
        .await
        .unwrap();
    find(&admin, "#lane-user-q")
        .await
        .send_keys("alice")
        .await
        .unwrap();
    find(&admin, "#lane-user-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&admin, "#lane-user option:nth-child(2)", |t| {
        t.starts_with("alice")
    })
    .await;
    find(&admin, "#lane-user")
        .await
        .select_by_value(&w.alice.0.to_string())
        .await
        .unwrap();
    wait_text(&admin, "#lanes-username", |t| t == "alice").await;
    wait_text(&admin, "#lanes-not-allowed", |t| t == "none").await;
    find(
        &admin,
        "#lanes-allowed li[data-lane='default'] button.lane-move",
    )
    .await
    .click()
    .await
    .unwrap();
    find(&admin, "#lanes-not-allowed li[data-lane='default']").await;
    wait_text(&admin, "#lanes-saved", |t| {
        t == "Saved: default is not allowed."
    })
    .await;
    wait_text(&admin, "#lanes-allowed", |t| t == "none").await;
    screenshot(&admin, "admin-lane-restrictions").await;

    // alice's page still offers `default` (it was loaded before): the API refuses, the page says why.
    find(&user, "#validation-job-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let refused = wait_text(&user, "#validation-job-form .api-error", |t| !t.is_empty()).await;
    assert!(
        refused.starts_with("J1 was not queued: lane `default` is not among your allowed lanes"),
        "the API's message: {refused}"
    );
    // The job was made but stays building, with a Queue button of its own.
    wait_text(
        &user,
        "#project-jobs-table tr[data-uid='J1'] td.status",
        |t| t == "building",
    )
    .await;
    find(
        &user,
        "#project-jobs-table tr[data-uid='J1'] button.job-queue",
    )
    .await;
    show_jobs(&user).await;
    screenshot(&user, "project-jobs-lane-refused").await;

    // The admin moves it back.
    find(
        &admin,
        "#lanes-not-allowed li[data-lane='default'] button.lane-move",
    )
    .await
    .click()
    .await
    .unwrap();
    find(&admin, "#lanes-allowed li[data-lane='default']").await;
    wait_text(&admin, "#lanes-saved", |t| {
        t == "Saved: default is allowed."
    })
    .await;

    // alice tries again: the same job is queued, runs as the lab's account, and its log is followed.
    find(&user, "#validation-job-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&user, "#job-log-uid", |t| t == "J1").await;
    let log = wait_long(&user, "#job-log-text", |t| t.contains("validation passed")).await;
    assert!(log.contains("account: cwlab1 uid=2101"), "{log}");
    wait_long(
        &user,
        "#project-jobs-table tr[data-uid='J1'] td.status",
        |t| t == "completed",
    )
    .await;
    wait_long(&user, "#job-log-status", |t| t == "(completed)").await;
    assert!(
        user.find(Locator::Css("#project-jobs-table tr[data-uid='J2']"))
            .await
            .is_err(),
        "no second job"
    );
    assert!(
        find(&user, "#validation-job-form .api-error")
            .await
            .text()
            .await
            .unwrap()
            .is_empty()
    );
    find(
        &user,
        "#project-jobs-table tr[data-uid='J1'] button.job-clear",
    )
    .await;
    show_jobs(&user).await;
    screenshot(&user, "project-jobs-completed").await;

    // Cluster Configuration: a target whose script uses a custom variable; the admin gives it an
    // instance-wide value, then the target's own, and the page says which one is in force.
    let (info, script) = cryowarden_server::cluster::slurm::example_slurm();
    let mut info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["name"] = json!("hpc");
    let script = script.replace(
        "#SBATCH --ntasks=1\n",
        "#SBATCH --ntasks=1\n#SBATCH --partition={{ my_partition }}\n",
    );
    let (s, v) = app
        .post(
            "/api/v1/clusters",
            &w.admin,
            json!({ "info": info, "script": script }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    find(&admin, "nav.tabs a[href='/admin/cluster']")
        .await
        .click()
        .await
        .unwrap();
    let default = wait_text(&admin, "#node-lanes tr[data-lane='default']", |t| {
        t.contains("localhost")
    })
    .await;
    assert!(default.starts_with("default"), "{default}");
    let wins = "#cluster-targets tr[data-var='my_partition'] td.wins";
    wait_text(&admin, wins, |t| t == "unset: give it per job").await;
    find(&admin, "#instance-var-add")
        .await
        .click()
        .await
        .unwrap();
    find(
        &admin,
        "#instance-vars-form tr.var-row:last-child input.var-name",
    )
    .await
    .send_keys("my_partition")
    .await
    .unwrap();
    find(
        &admin,
        "#instance-vars-form tr.var-row:last-child input.var-value",
    )
    .await
    .send_keys("gpu")
    .await
    .unwrap();
    find(&admin, "#instance-vars-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&admin, wins, |t| t == "instance's value").await;
    assert_eq!(
        app.get("/api/v1/custom-vars", &w.admin).await.1,
        json!({ "my_partition": "gpu" })
    );
    find(&admin, "input.target-var[data-var='my_partition']")
        .await
        .send_keys("a100")
        .await
        .unwrap();
    find(&admin, "form.target-vars button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&admin, wins, |t| t == "target's value").await;
    let target = app.get("/api/v1/lanes", &w.admin).await.1;
    let hpc = target
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "hpc")
        .unwrap()
        .clone();
    assert_eq!(
        hpc["targets"][0]["custom_vars"],
        json!({ "my_partition": "a100" }),
        "{hpc}"
    );
    // A node lane from the form; when its target is refused, the new lane is taken away again.
    let fill = |pairs: [(&'static str, &'static str); 5]| {
        let admin = admin.clone();
        async move {
            for (id, value) in pairs {
                let input = find(&admin, id).await;
                input.clear().await.unwrap();
                input.send_keys(value).await.unwrap();
            }
            find(&admin, "#new-node-lane-form button[type=submit]")
                .await
                .click()
                .await
                .unwrap();
        }
    };
    let fields = [
        "#node-lane-name",
        "#node-target-name",
        "#node-cpus",
        "#node-ram",
        "#node-gpus",
    ];
    fill([
        (fields[0], "spare"),
        (fields[1], "localhost"),
        (fields[2], "4"),
        (fields[3], "16"),
        (fields[4], ""),
    ])
    .await;
    let refused = wait_text(&admin, "#new-node-lane-form .api-error", |t| !t.is_empty()).await;
    assert!(refused.contains("name"), "{refused}");
    let lanes = app.get("/api/v1/lanes", &w.admin).await.1;
    assert!(
        lanes
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["name"] != "spare"),
        "{lanes}"
    );
    fill([
        (fields[0], "gpubox"),
        (fields[1], "gpubox-1"),
        (fields[2], "8"),
        (fields[3], "64"),
        (fields[4], "0, 1"),
    ])
    .await;
    let row = wait_text(&admin, "#node-lanes tr[data-lane='gpubox']", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(row, "gpubox gpubox-1 gpubox-1 8 2: 0, 1 64");
    screenshot(&admin, "admin-cluster-configuration").await;

    // Current Jobs follows the queue by itself: a job held by maintenance appears, is killed
    // from its row, and goes.
    find(&admin, "nav.tabs a[href='/admin/jobs']")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&admin, "#current-jobs-empty", |t| {
        t == "No queued, launched or running jobs."
    })
    .await;
    let maintenance = json!({ "maintenance": { "active": true, "message": "" } });
    assert_eq!(
        app.patch("/api/v1/settings/instance", &w.admin, maintenance)
            .await
            .0,
        StatusCode::OK
    );
    let (s, job) = app
        .post(
            "/api/v1/jobs",
            &w.alice.1,
            json!({ "project_id": project, "job_type": "validation" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_i64().unwrap();
    let (s, v) = app
        .post(
            &format!("/api/v1/jobs/{id}/queue"),
            &w.alice.1,
            json!({ "lane": "default" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let row = format!("#current-jobs tr[data-job-id='{id}']");
    let text = wait_text(&admin, &row, |t| t.contains("waiting maintenance")).await;
    assert!(
        text.starts_with("apoferritin J2 validation alice"),
        "{text}"
    );
    wait_text(&admin, "#current-jobs-updated", |t| {
        t.starts_with("Updated at")
    })
    .await;
    screenshot(&admin, "admin-current-jobs").await;
    find(&admin, &format!("{row} button.job-kill"))
        .await
        .click()
        .await
        .unwrap();
    admin.accept_alert().await.unwrap();
    wait_text(&admin, "#current-jobs-empty", |t| {
        t == "No queued, launched or running jobs."
    })
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{id}"), &w.admin).await.1["status"],
        "killed"
    );
    admin.close().await.unwrap();
    user.close().await.unwrap();
}
