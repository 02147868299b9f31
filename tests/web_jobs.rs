//! The jobs pages over HTTP (no browser), with two labs on disk, their Unix accounts and the real
//! runner: the admin panel's Cluster Configuration, Lane Restrictions and Current Jobs tabs show
//! each role what `spec/permissions.toml` gives it (`cluster-custom-variables` and
//! `lane-restrictions`: Site and Application Admins change them, Troubleshooters have none;
//! `compute`: the Site Admin changes it, the Application Admin reads it), custom variables are
//! found in a cluster target's templates and escaped, and a project's page lists its jobs.

mod common;

use common::world::{create_project, world};
use common::{ADMIN_PASSWORD, Backend, TestApp, USER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A page's status and HTML, with minijinja's escaped slashes (`&#x2f;`) read back as `/`.
async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = app
        .http
        .get(format!("{}{path}", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (
        resp.status(),
        resp.text().await.unwrap().replace("&#x2f;", "/"),
    )
}

async fn session(app: &TestApp, username: &str) -> String {
    let password = if username == "root-admin" {
        ADMIN_PASSWORD
    } else {
        USER_PASSWORD
    };
    app.login(username, password).await.0
}

/// The element that opens with `start` (e.g. `<form id="x"`) up to its closing `</tag>`, the
/// tag being the first word after `<`: enough for the non-nested elements checked here.
fn element<'a>(html: &'a str, start: &str) -> &'a str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"));
    let tag: String = start[1..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let end = html[at..]
        .find(&format!("</{tag}>"))
        .map_or(html.len(), |e| at + e);
    &html[at..end]
}

const TABS: [&str; 3] = [
    "href=\"/admin/cluster\"",
    "href=\"/admin/lanes\"",
    "href=\"/admin/jobs\"",
];

/// The admin panel's tab bar of a page.
fn tab_bar(html: &str) -> &str {
    element(html, "<nav class=\"tabs\"")
}

/// Connects a SLURM cluster target whose script and qsub template use custom variables.
async fn connect_cluster(app: &TestApp, admin: &str) -> i64 {
    let (info, script) = cryowarden_server::cluster::slurm::example_slurm();
    let mut info: Value = serde_json::from_str(&info).unwrap();
    info["name"] = json!("hpc");
    info["qsub_cmd_tpl"] = json!("sbatch --qos={{ qos }} {{ script_path_abs }}");
    let script = script.replace(
        "#SBATCH --ntasks=1\n",
        "#SBATCH --ntasks=1\n#SBATCH --partition={{ my_partition }}\n",
    );
    assert!(script.contains("{{ my_partition }}"));
    let (s, v) = app
        .post(
            "/api/v1/clusters",
            admin,
            json!({ "info": info, "script": script }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["targets"][0]["id"].as_i64().unwrap()
}

on_both_backends!(
    the_jobs_tabs_show_each_role_what_it_may_read_and_change,
    |app: TestApp| async move {
        let w = world(&app).await;
        app.user(&w.admin, "hpc-admin", "application_admin").await;
        app.user(&w.admin, "helpdesk", "troubleshooter").await;
        let site = session(&app, "root-admin").await;
        let application = session(&app, "hpc-admin").await;
        let troubleshooter = session(&app, "helpdesk").await;
        let alice = session(&app, "alice").await;

        // The Site Admin: the three tabs on every tab of the panel, everything editable.
        for path in [
            "/admin/settings",
            "/admin/users",
            "/admin/cluster",
            "/admin/lanes",
            "/admin/jobs",
        ] {
            let (s, html) = page(&app, &site, path).await;
            assert_eq!(s, StatusCode::OK, "{path}: {html}");
            let bar = tab_bar(&html);
            for tab in TABS {
                assert_eq!(bar.matches(tab).count(), 1, "{tab} once on {path}: {bar}");
            }
            assert!(
                bar.contains("href=\"/admin/settings\"") && bar.contains("href=\"/admin/users\""),
                "{bar}"
            );
        }
        let (_, html) = page(&app, &site, "/admin/cluster").await;
        assert!(
            tab_bar(&html).contains("<a href=\"/admin/cluster\" aria-current=\"page\">"),
            "{html}"
        );
        assert!(
            html.contains("data-editable-vars=\"true\"")
                && html.contains("id=\"instance-var-add\""),
            "{html}"
        );
        assert!(
            html.contains("id=\"new-node-lane-form\""),
            "compute is the Site Admin's: {html}"
        );
        // The default lane is listed with its target's slots.
        let default = element(&html, "<tr data-lane=\"default\"");
        assert!(
            default.contains("localhost") && default.contains("class=\"cpus\""),
            "{default}"
        );
        let (_, html) = page(&app, &site, &format!("/admin/lanes?user={}", w.alice.0)).await;
        assert!(html.contains("data-editable=\"true\""), "{html}");
        let allowed = element(&html, "<ul id=\"lanes-allowed\"");
        assert!(
            allowed.contains("data-lane=\"default\"") && allowed.contains("class=\"lane-move"),
            "{allowed}"
        );

        // The Application Admin: custom variables and lane restrictions editable, compute read-only.
        let (_, html) = page(&app, &application, "/admin/settings").await;
        for tab in TABS {
            assert!(
                tab_bar(&html).contains(tab),
                "{tab} for an Application Admin: {html}"
            );
        }
        let (s, html) = page(&app, &application, "/admin/cluster").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("data-editable-vars=\"true\"")
                && html.contains("id=\"instance-var-add\""),
            "{html}"
        );
        assert!(
            !html.contains("id=\"new-node-lane-form\""),
            "compute is read-only for an Application Admin: {html}"
        );
        assert!(
            html.contains("id=\"node-lanes\"") && html.contains("<tr data-lane=\"default\""),
            "but readable: {html}"
        );
        let (s, html) = page(
            &app,
            &application,
            &format!("/admin/lanes?user={}", w.alice.0),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("data-editable=\"true\"") && html.contains("class=\"lane-move"),
            "{html}"
        );
        assert!(
            element(&html, "<select id=\"lane-user\"")
                .contains(&format!("<option value=\"{}\" selected>alice", w.alice.0))
        );
        let (s, _) = page(&app, &application, "/admin/jobs").await;
        assert_eq!(s, StatusCode::OK);

        // A Troubleshooter: neither custom variables nor lane restrictions; the current jobs, read-only.
        let (s, html) = page(&app, &troubleshooter, "/admin/settings").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let bar = tab_bar(&html);
        assert!(
            !bar.contains(TABS[0]) && !bar.contains(TABS[1]) && bar.contains(TABS[2]),
            "{bar}"
        );
        for path in ["/admin/cluster", "/admin/lanes"] {
            let (s, html) = page(&app, &troubleshooter, path).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
            assert!(html.contains("Not allowed"), "{path}: {html}");
        }

        // An ordinary user: the 403 page, for each of the three.
        for path in ["/admin/cluster", "/admin/lanes", "/admin/jobs"] {
            let (s, html) = page(&app, &alice, path).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
            assert!(
                html.contains("Not allowed") && html.contains("not open to your role"),
                "{path}: {html}"
            );
        }

        // Current Jobs: a job held by maintenance is listed with its queue state; the Site Admin may
        // kill it, the Troubleshooter (oversight, no role in the project) may not.
        let project = create_project(&app, &w.alice.1, w.lab1, "apoferritin").await["id"]
            .as_i64()
            .unwrap();
        let (s, v) = app
            .patch(
                "/api/v1/settings/instance",
                &w.admin,
                json!({ "maintenance": { "active": true, "message": "" } }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
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
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("queued")),
            "{v}"
        );
        let (_, html) = page(&app, &site, "/admin/jobs").await;
        let row = element(&html, &format!("<tr data-job-id=\"{id}\""));
        for text in [
            "apoferritin",
            "J1",
            "validation",
            "alice",
            "default",
            "queued",
            "waiting maintenance: the instance is in maintenance mode",
        ] {
            assert!(row.contains(text), "{text} in {row}");
        }
        assert!(row.contains("class=\"danger job-kill\""), "{row}");
        assert!(html.contains("data-kill-any=\"true\""));
        let (s, html) = page(&app, &troubleshooter, "/admin/jobs").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let row = element(&html, &format!("<tr data-job-id=\"{id}\""));
        assert!(row.contains("J1") && !row.contains("job-kill"), "{row}");
        assert!(
            html.contains("data-kill-any=\"false\" data-kill-projects=\"\""),
            "{html}"
        );
        // The auto-refresh reads the same list from the API.
        let (s, v) = app
            .get(
                "/api/v1/jobs?status=queued,launched,running&limit=500",
                &w.admin,
            )
            .await;
        assert_eq!(
            (s, v.as_array().map(Vec::len)),
            (StatusCode::OK, Some(1)),
            "{v}"
        );
        let resp = app
            .http
            .get(format!("{}/static/jobs.js", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );

        // Showing or hiding controls is not audited; the refused tabs are.
        let (_, v) = app
            .get("/api/v1/audit?outcome=denied&limit=50", &w.admin)
            .await;
        let denied: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(
            denied.len(),
            5,
            "two tabs refused to the Troubleshooter, three to alice: {v}"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_targets_custom_variables_are_listed_with_the_level_that_wins() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let site = session(&app, "root-admin").await;
    let target = connect_cluster(&app, &w.admin).await;
    let (s, html) = page(&app, &site, "/admin/cluster").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let form = element(
        &html,
        &format!("<form class=\"target-vars\" id=\"target-vars-{target}\""),
    );
    assert!(form.contains("data-target=\"hpc\""), "{form}");
    let partition = element(form, "<tr data-var=\"my_partition\"");
    assert!(
        partition.contains("cluster_script.sh") && partition.contains("data-wins=\"unset\""),
        "{partition}"
    );
    assert!(
        partition.contains("<input class=\"target-var\" data-var=\"my_partition\""),
        "{partition}"
    );
    let qos = element(form, "<tr data-var=\"qos\"");
    assert!(
        qos.contains("qsub_cmd_tpl") && !qos.contains("cluster_script.sh"),
        "{qos}"
    );
    // Built-in variables (job_uid, num_cpu, script_path_abs ...) are not custom ones.
    for builtin in ["job_uid", "num_cpu", "script_path_abs", "run_cmd"] {
        assert!(
            !form.contains(&format!("data-var=\"{builtin}\"")),
            "{builtin}: {form}"
        );
    }

    // An instance value applies where the target sets none; the target's own wins over it.
    let vars = json!({ "my_partition": "gpu", "qos": "normal" });
    assert_eq!(
        app.call(
            Method::PUT,
            "/api/v1/custom-vars",
            Some(&w.admin),
            Some(vars)
        )
        .await
        .0,
        StatusCode::OK
    );
    let vars = json!({ "qos": "high", "unused": "x" });
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/targets/{target}/custom-vars"),
            Some(&w.admin),
            Some(vars),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, html) = page(&app, &site, "/admin/cluster").await;
    let form = element(
        &html,
        &format!("<form class=\"target-vars\" id=\"target-vars-{target}\""),
    );
    let partition = element(form, "<tr data-var=\"my_partition\"");
    assert!(
        partition.contains("data-wins=\"instance\"")
            && partition.contains("<code class=\"value\">gpu</code>"),
        "{partition}"
    );
    let qos = element(form, "<tr data-var=\"qos\"");
    assert!(
        qos.contains("data-wins=\"target\"") && qos.contains("value=\"high\""),
        "{qos}"
    );
    let unused = element(form, "<tr data-var=\"unused\"");
    assert!(
        unused.contains("not used by the templates"),
        "a target value no template uses is listed: {unused}"
    );
    let instance = element(&html, "<form id=\"instance-vars-form\"");
    assert!(
        instance.contains("value=\"my_partition\"") && instance.contains("value=\"gpu\""),
        "{instance}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_variable_values_are_escaped() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    app.user(&w.admin, "helpdesk", "troubleshooter").await;
    let target = connect_cluster(&app, &w.admin).await;
    let evil = "<script>alert('var')</script>\"'&";
    let vars = json!({ "my_partition": evil });
    let (s, v) = app
        .call(
            Method::PUT,
            "/api/v1/custom-vars",
            Some(&w.admin),
            Some(vars.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/targets/{target}/custom-vars"),
            Some(&w.admin),
            Some(vars),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let site = session(&app, "root-admin").await;
    let (s, html) = page(&app, &site, "/admin/cluster").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    // In the instance's editor, in the target's instance column, and in the target's editor.
    assert!(html.matches("&lt;script&gt;alert(").count() >= 3, "{html}");
    assert!(
        !html.contains("value=\"<") && !html.contains("\"'&\""),
        "attribute values are escaped: {html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_page_lists_its_jobs_with_controls_for_its_editors() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let project = create_project(&app, &w.alice.1, w.lab1, "ribosome").await["id"]
        .as_i64()
        .unwrap();
    let (s, job) = app
        .post(
            "/api/v1/jobs",
            &w.alice.1,
            json!({ "project_id": project, "job_type": "validation", "title": "<b>check</b>" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_i64().unwrap();

    let alice = session(&app, "alice").await;
    let (s, html) = page(&app, &alice, &format!("/projects/{project}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let section = element(&html, "<section class=\"panel\" id=\"project-jobs\"");
    assert!(section.contains("data-can-edit=\"true\""), "{section}");
    let row = element(section, &format!("<tr data-job-id=\"{id}\""));
    assert!(
        row.contains("data-uid=\"J1\"") && row.contains("data-status=\"building\""),
        "{row}"
    );
    assert!(
        row.contains("class=\"link-like job-open\"") && row.contains(">J1</button>"),
        "{row}"
    );
    assert!(
        row.contains("&lt;b&gt;check&lt;/b&gt;") && !row.contains("<b>check"),
        "the title, escaped: {row}"
    );
    assert!(
        row.contains("class=\"secondary job-queue\""),
        "a building job can be queued: {row}"
    );
    // The quick-create form offers the lanes alice may queue to.
    let form = element(section, "<form id=\"validation-job-form\"");
    assert!(form.contains("<option value=\"default\">default"), "{form}");
    assert!(html.contains("<script src=\"/static/jobs.js\"></script>"));

    // A denied lane is not offered; with none left, the form says so.
    let denied = json!({ "not_allowed": ["default"] });
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{}/lanes", w.alice.0),
            Some(&w.admin),
            Some(denied),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, html) = page(&app, &alice, &format!("/projects/{project}")).await;
    assert!(
        !html.contains("id=\"validation-job-form\"") && html.contains("id=\"no-lanes\""),
        "{html}"
    );

    // dave reads the project (lab members read by default): its jobs, but no controls.
    let dave = session(&app, "dave").await;
    let (s, html) = page(&app, &dave, &format!("/projects/{project}")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let section = element(&html, "<section class=\"panel\" id=\"project-jobs\"");
    assert!(
        section.contains("data-can-edit=\"false\"")
            && section.contains(&format!("<tr data-job-id=\"{id}\""))
    );
    for control in ["validation-job-form", "job-kill", "job-clear", "job-queue"] {
        assert!(
            !section.contains(control),
            "no {control} for a reader: {section}"
        );
    }
    // The admin kills a queued job from the API: its row then offers Clear, not Kill.
    let allowed = json!({ "not_allowed": [] });
    assert_eq!(
        app.call(
            Method::PUT,
            &format!("/api/v1/users/{}/lanes", w.alice.0),
            Some(&w.admin),
            Some(allowed)
        )
        .await
        .0,
        StatusCode::OK
    );
    let (s, v) = app
        .patch(
            "/api/v1/settings/instance",
            &w.admin,
            json!({ "maintenance": { "active": true, "message": "" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .post(
            &format!("/api/v1/jobs/{id}/queue"),
            &w.alice.1,
            json!({ "lane": "default" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, html) = page(&app, &alice, &format!("/projects/{project}")).await;
    let row = element(&html, &format!("<tr data-job-id=\"{id}\""));
    assert!(
        row.contains("data-status=\"queued\"") && row.contains("class=\"danger job-kill\""),
        "{row}"
    );
    assert!(
        row.contains("waiting maintenance") && !row.contains("job-clear"),
        "{row}"
    );
    let (s, v) = app
        .post(&format!("/api/v1/jobs/{id}/kill"), &w.admin, json!({}))
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("killed")),
        "{v}"
    );
    let (_, html) = page(&app, &alice, &format!("/projects/{project}")).await;
    let row = element(&html, &format!("<tr data-job-id=\"{id}\""));
    assert!(
        row.contains("data-status=\"killed\"") && row.contains("class=\"secondary job-clear\""),
        "{row}"
    );
    assert!(
        row.contains("killed by user") && !row.contains("job-kill"),
        "{row}"
    );
    // bob (lab2) does not see the project, nor its jobs.
    let bob = session(&app, "bob").await;
    assert_eq!(
        page(&app, &bob, &format!("/projects/{project}")).await.0,
        StatusCode::NOT_FOUND
    );
}
