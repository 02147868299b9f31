//! The layering rules the code keeps, checked on its text: the HTTP layer (`api/`, `web/`) asks
//! the domain and decides nothing itself, and SQL stays where it is today while it moves to the
//! store (no new module may start writing SQL).

#![cfg(test)]

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each line of code (comments left out) of the files under `dir` that contains one of `needles`.
fn offenders(dir: &str, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root.join(dir), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for needle in needles {
                if code.contains(needle) {
                    let shown = file.strip_prefix(&root).unwrap().display();
                    found.push(format!("{shown}:{}: {needle}", n + 1));
                }
            }
        }
    }
    found
}

#[test]
fn handlers_and_pages_ask_the_domain_and_decide_nothing() {
    let needles = [
        "authorize(",
        "sqlx::",
        "Command::new",
        ".spawn(",
        "process::Command",
    ];
    for dir in ["api", "web"] {
        let found = offenders(dir, &needles);
        assert!(
            found.is_empty(),
            "{dir}/ must not authorize, query the database or start processes itself: move it \
             into a domain function (CONTRIBUTING.md):\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_rule_sees_an_offence() {
    // The scan itself finds what it looks for: this file names every needle in code.
    let found = offenders(".", &["fn offenders("]);
    assert!(
        found.iter().any(|f| f.starts_with("house_rules.rs:")),
        "{found:?}"
    );
}

#[test]
fn no_new_module_writes_sql() {
    // The modules that still hold SQL of their own until each table has its owner in the store.
    const STILL: &[&str] = &[
        "auth.rs",
        "console/active_users.rs",
        "console/store.rs",
        "console/terms.rs",
        "http/error.rs",
        "impersonation.rs",
        "inspect/database.rs",
        "inspect/loggers.rs",
        "inspect/mod.rs",
        "inspect/queries.rs",
        "inspect/validation.rs",
        "jobs/commands.rs",
        "jobs/mod.rs",
        "labs/members.rs",
        "labs/mod.rs",
        "labs/roots.rs",
        "labs/unix.rs",
        "lanes/mod.rs",
        "lanes/restrictions.rs",
        "logs/init.rs",
        "logs/service.rs",
        "logs/view.rs",
        "projects/data.rs",
        "projects/members.rs",
        "projects/mod.rs",
        "projects/workspaces.rs",
        "scheduler/cluster.rs",
        "scheduler/import.rs",
        "scheduler/mod.rs",
        "settings.rs",
        "users.rs",
    ];
    let found: Vec<String> = offenders(".", &["sqlx::"])
        .into_iter()
        .filter(|f| !f.starts_with("house_rules.rs:"))
        .filter(|f| !STILL.iter().any(|s| f.starts_with(&format!("{s}:"))))
        .collect();
    assert!(
        found.is_empty(),
        "SQL belongs to the store (crates/store), one owning module per table:\n{}",
        found.join("\n")
    );
}
