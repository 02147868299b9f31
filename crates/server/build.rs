//! Credits: the third-party crates this build links, with their versions, licences and
//! repositories, written to `OUT_DIR/credits.json` for `inspect::credits`.
//!
//! Asks `cargo metadata --offline --locked --filter-platform $TARGET` (works on a fresh clone
//! without the network: the build itself needed every crate in the registry cache) and walks the
//! resolved graph from this package along normal and build dependencies, so dev-only crates and
//! other platforms' crates are left out, as are the workspace's own packages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    println!("cargo:rerun-if-changed=../../Cargo.toml");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("credits.json");
    let credits = match credits(&root) {
        Ok(c) => c,
        Err(e) => {
            println!("cargo:warning=credits: {e}; the credits list of this build is empty");
            json!({ "error": e, "crates": [] })
        }
    };
    std::fs::write(&out, serde_json::to_string(&credits).expect("json"))
        .expect("write credits.json");
}

fn credits(root: &std::path::Path) -> Result<Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::var("TARGET").map_err(|e| format!("TARGET: {e}"))?;
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--locked",
            "--filter-platform",
            &target,
        ])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let meta: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let workspace: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let start = packages
        .iter()
        .find(|(id, p)| workspace.contains(*id) && p["name"] == "cryowarden-server")
        .map(|(id, _)| *id)
        .ok_or("cryowarden-server is not in the metadata")?;
    // Normal and build dependencies, transitively.
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let linked = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if linked && let Some(pkg) = dep["pkg"].as_str() {
                todo.push(pkg);
            }
        }
    }
    let mut crates: Vec<Value> = seen
        .iter()
        .filter(|id| !workspace.contains(*id))
        .filter_map(|id| packages.get(id))
        .map(|p| {
            json!({
                "name": p["name"],
                "version": p["version"],
                "license": p["license"].as_str().map(str::to_owned).or_else(|| p["license_file"].as_str().map(|f| format!("see {f}"))),
                "repository": p["repository"],
                "description": p["description"].as_str().map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
            })
        })
        .collect();
    crates.sort_by(|a, b| {
        (a["name"].as_str(), a["version"].as_str())
            .cmp(&(b["name"].as_str(), b["version"].as_str()))
    });
    Ok(json!({ "crates": crates }))
}
