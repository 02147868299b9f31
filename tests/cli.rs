//! The `cryowarden` command line, run as a user would: offline commands on a data directory,
//! remote commands against a running server.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::process::{Server, run, stdout};
use serde_json::Value;

const PASSWORD: &str = "facility head passphrase";

#[test]
fn offline_and_remote_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let home = dir.path().join("home");
    let env = [
        ("XDG_CONFIG_HOME", home.to_str().unwrap()),
        ("CRYOWARDEN_URL", ""),
        ("CRYOWARDEN_TOKEN", ""),
    ];

    let example = run(&["config", "example"], "", &env);
    assert!(example.status.success());
    assert!(stdout(&example).contains("listen = \"127.0.0.1:39000\""));

    let weak = run(
        &[
            "admin",
            "bootstrap",
            "--data-dir",
            data_s,
            "--username",
            "head",
            "--email",
            "head@f.example",
            "--password-stdin",
        ],
        "password",
        &env,
    );
    assert!(!weak.status.success(), "a weak password is refused");
    let ok = run(
        &[
            "admin",
            "bootstrap",
            "--data-dir",
            data_s,
            "--username",
            "head",
            "--email",
            "head@f.example",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
        &env,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout(&ok).contains("created Site Admin head"));
    let again = run(
        &[
            "admin",
            "bootstrap",
            "--data-dir",
            data_s,
            "--username",
            "head2",
            "--email",
            "h2@f.example",
            "--password-stdin",
        ],
        PASSWORD,
        &env,
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let status = run(&["migrate", "--status", "--data-dir", data_s], "", &env);
    assert!(stdout(&status).contains("applied"), "{}", stdout(&status));

    let server = Server::start(&data, None);
    let url = server.url.as_str();
    let login = run(
        &[
            "login",
            "--url",
            url,
            "--username",
            "head",
            "--password-stdin",
        ],
        PASSWORD,
        &env,
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let creds = home.join("cryowarden/credentials.json");
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the saved token is private");

    let created = run(
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--email",
            "bob@lab.example",
            "--first-name",
            "Bob",
        ],
        "",
        &env,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(stdout(&created).contains("registration token"));
    assert!(stdout(&created).contains("/register?token=cwr_"));

    let listed = run(&["user", "list", "--json"], "", &env);
    let page: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(page["total"], 2);
    assert!(
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "bob")
    );

    let role = run(
        &["user", "set-role", "bob", "troubleshooter", "--json"],
        "",
        &env,
    );
    let bob: Value = serde_json::from_str(&stdout(&role)).unwrap();
    assert_eq!(bob["site_role"], "troubleshooter");
    let self_demote = run(&["user", "set-role", "head", "none"], "", &env);
    assert!(!self_demote.status.success());
    assert!(String::from_utf8_lossy(&self_demote.stderr).contains("403 forbidden"));

    let reset = run(&["user", "reset-token", "bob"], "", &env);
    assert!(
        stdout(&reset).contains("register token"),
        "an invited user gets a new registration token: {}",
        stdout(&reset)
    );
    let off = run(&["user", "deactivate", "bob", "--json"], "", &env);
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    assert!(String::from_utf8_lossy(&off.stderr).is_empty());

    let token = run(&["token", "create", "nightly", "--json"], "", &env);
    let t: Value = serde_json::from_str(&stdout(&token)).unwrap();
    let id = t["id"].as_i64().unwrap().to_string();
    let secret = t["secret"].as_str().unwrap().to_owned();
    let listed = run(&["token", "list"], "", &env);
    assert!(stdout(&listed).contains("nightly") && !stdout(&listed).contains(&secret));
    let with_new = run(
        &["user", "show", "head", "--json"],
        "",
        &[
            ("XDG_CONFIG_HOME", "/nonexistent"),
            ("CRYOWARDEN_URL", url),
            ("CRYOWARDEN_TOKEN", &secret),
        ],
    );
    assert!(
        with_new.status.success(),
        "the environment's token works: {}",
        String::from_utf8_lossy(&with_new.stderr)
    );
    assert!(run(&["token", "revoke", &id], "", &env).status.success());
    let revoked = run(
        &["user", "show", "head"],
        "",
        &[
            ("XDG_CONFIG_HOME", "/nonexistent"),
            ("CRYOWARDEN_URL", url),
            ("CRYOWARDEN_TOKEN", &secret),
        ],
    );
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("401"));

    let refuse = run(&["user", "delete", "bob"], "", &env);
    assert!(!refuse.status.success() && String::from_utf8_lossy(&refuse.stderr).contains("--yes"));
    assert!(
        run(&["user", "delete", "bob", "--yes"], "", &env)
            .status
            .success()
    );
    let gone = run(&["user", "show", "bob"], "", &env);
    assert!(!gone.status.success());
    drop(server);

    // The offline report, for when the server is down: the server's own logs are in it.
    let zip = dir.path().join("report.zip");
    let report = run(
        &["report", "--data-dir", data_s, "-o", zip.to_str().unwrap()],
        "",
        &env,
    );
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let entries = common::unzip(&std::fs::read(&zip).unwrap());
    for name in [
        "logs/app.log",
        "logs/api.log",
        "logs/audit.log",
        "runtime-diagnostics.json",
        "browser-diagnostics.json",
    ] {
        assert!(
            entries.contains_key(name),
            "{name} missing from {:?}",
            entries.keys()
        );
    }
    let runtime: Value = serde_json::from_str(&entries["runtime-diagnostics.json"]).unwrap();
    assert_eq!(runtime["database"]["reachable"], true);
    assert!(
        entries["logs/audit.log"].contains("action=create-user"),
        "the audit service log mirrors events: {}",
        entries["logs/audit.log"]
    );

    let verify = run(&["audit", "verify", "--data-dir", data_s], "", &env);
    assert!(verify.status.success());
    let text = stdout(&verify);
    assert!(
        text.starts_with("ok, ") && text.trim_end().ends_with(" events"),
        "{text}"
    );
}

#[test]
fn remote_commands_say_what_is_missing() {
    let out = run(
        &["user", "list"],
        "",
        &[
            ("XDG_CONFIG_HOME", "/nonexistent"),
            ("CRYOWARDEN_URL", ""),
            ("CRYOWARDEN_TOKEN", ""),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server URL"));
    let out = run(
        &["user", "list"],
        "",
        &[
            ("XDG_CONFIG_HOME", "/nonexistent"),
            ("CRYOWARDEN_URL", "http://127.0.0.1:9"),
            ("CRYOWARDEN_TOKEN", "cwt_x"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
