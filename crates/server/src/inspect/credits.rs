//! credits: the third-party crates of this build, their versions, licences and repositories,
//! generated at build time by `crates/server/build.rs` from `cargo metadata`.

use std::sync::LazyLock;

use serde_json::{Value, json};

/// The list `build.rs` wrote: `{"crates": [{name, version, license, repository, description}]}`.
pub const CREDITS_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/credits.json"));

static CREDITS: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(CREDITS_JSON).unwrap_or_default());

/// The credits, with a count per licence.
pub fn view() -> Value {
    let crates = CREDITS["crates"].as_array().cloned().unwrap_or_default();
    let mut licences = std::collections::BTreeMap::<String, u64>::new();
    for c in &crates {
        *licences
            .entry(c["license"].as_str().unwrap_or("unknown").to_owned())
            .or_default() += 1;
    }
    json!({
        "count": crates.len(),
        "crates": crates,
        "licences": licences,
        "error": CREDITS.get("error"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_lists_its_crates_but_not_its_own() {
        let v = super::view();
        let crates = v["crates"].as_array().unwrap();
        let find = |name: &str| crates.iter().find(|c| c["name"] == name);
        assert!(
            find("axum").is_some_and(|c| c["license"] == "MIT"),
            "{:?}",
            find("axum")
        );
        assert!(find("sqlx-core").is_some());
        assert!(
            find("cryowarden-core").is_none(),
            "workspace packages are not credits"
        );
        assert!(
            find("tempfile").is_none(),
            "dev-dependencies are not in the build"
        );
    }
}
