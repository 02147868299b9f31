//! The real `cryowarden` binary against a running server: `console list|show|set|run` and the
//! remote `audit log|export` commands, each answering exactly what the caller's role allows.

mod common;

use common::{Backend, TestApp};
use cryowarden_core::table::setting_access;
use cryowarden_core::{Access, Column, Setting};

#[tokio::test]
async fn the_console_and_the_audit_log_from_the_command_line() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let admin = app.site_admin().await;
    let (_, aa) = app.user(&admin, "appadmin", "application_admin").await;
    let (_, ts) = app.user(&admin, "trouble", "troubleshooter").await;

    // `console list`: the rows of the caller's column, with the partial row's read-only fields.
    let (ok, rows, err) = app.cli(&aa, &["console", "list"]).await;
    assert!(ok, "{err}");
    let keys: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    let expected: Vec<&str> = Setting::ALL
        .iter()
        .filter(|s| setting_access(**s, Column::ApplicationAdmin).0 != Access::None)
        .map(|s| s.as_str())
        .collect();
    assert_eq!(keys.len(), expected.len(), "{keys:?}");
    assert!(expected.iter().all(|k| keys.contains(k)), "{keys:?}");
    let look = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "look-and-feel")
        .unwrap();
    let mut fields: Vec<&str> = look["read_only_fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["login_message", "system_email_address"]);

    // `console set`: typed values; refused for a read-only row, with the server's reason.
    let (ok, v, err) = app
        .cli(
            &admin,
            &["console", "set", "authentication", "password_min_length=20"],
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(v["value"]["password_min_length"], 20, "{v}");
    let (ok, _, err) = app
        .cli(
            &ts,
            &["console", "set", "authentication", "password_min_length=8"],
        )
        .await;
    assert!(!ok && err.contains("403 forbidden"), "{err}");
    let (ok, _, err) = app
        .cli(
            &admin,
            &[
                "console",
                "set",
                "authentication",
                "password_min_length=none",
            ],
        )
        .await;
    assert!(
        !ok && err.contains("422"),
        "a text where a number goes: {err}"
    );
    let (_, v, _) = app
        .cli(&admin, &["console", "show", "authentication"])
        .await;
    assert_eq!(
        v["value"]["password_min_length"], 20,
        "the refusals changed nothing: {v}"
    );
    let (ok, v, err) = app
        .cli(
            &admin,
            &[
                "console",
                "set",
                "site-settings",
                "impersonation_minutes=30",
            ],
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(v["value"]["impersonation_minutes"], 30, "{v}");

    // `console show` of a diagnostic, and `console run` of an action.
    let (ok, v, err) = app
        .cli(&ts, &["console", "show", "environment-variables"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(v["access"], "read-only", "{v}");
    let (ok, _, err) = app
        .cli(&ts, &["console", "run", "site-errors", "reset"])
        .await;
    assert!(
        !ok && err.contains("403"),
        "a troubleshooter views site errors only: {err}"
    );
    let (ok, _, err) = app
        .cli(&aa, &["console", "run", "site-errors", "reset"])
        .await;
    assert!(ok, "{err}");

    // `audit log` and `audit export`: filtered, the refusals above included.
    let (ok, events, err) = app
        .cli(
            &admin,
            &["audit", "log", "--actor", "trouble", "--outcome", "denied"],
        )
        .await;
    assert!(ok, "{err}");
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"change-setting:authentication"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("change-setting:site-errors")),
        "{actions:?}"
    );
    let (ok, exported, err) = app
        .cli(
            &aa,
            &[
                "audit",
                "export",
                "--format",
                "json",
                "--action",
                "change-setting:*",
                "--outcome",
                "ok",
            ],
        )
        .await;
    assert!(ok, "{err}");
    let exported = exported.as_array().expect("a JSON array");
    assert!(
        exported.iter().any(|e| e["actor"] == "root-admin"),
        "{exported:?}"
    );
    assert!(
        exported.iter().all(|e| e["outcome"] == "ok"),
        "{exported:?}"
    );
    let (ok, _, err) = app.cli(&ts, &["audit", "export", "--format", "xml"]).await;
    assert!(!ok && err.contains("422"), "{err}");
}
