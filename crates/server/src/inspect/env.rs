//! environment-variables and startup-properties: what the server runs with, secrets redacted
//! for every reader (Site Admins too): values of names that look secret, and the password of
//! any `scheme://user:password@host` inside a value.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::Config;

/// What replaces a secret.
pub const REDACTED: &str = "***";

/// Parts of a name that mark its value as secret (compared case-insensitively).
const SECRET_WORDS: [&str; 8] = [
    "PASSWORD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PASS",
    "AUTH",
    "COOKIE",
];

/// Whether a variable or field called `name` holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// `text` with the password of every `scheme://user:password@host` replaced by `***`.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        // The authority ends at the path, query, fragment, or anything that cannot be in it.
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#')
                    || c.is_whitespace()
                    || matches!(c, '"' | '\'' | ',' | ';')
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(c) => {
                        out.push_str(&userinfo[..c]);
                        out.push(':');
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The value of `name` as shown: `***` for a secret name, else with URL passwords redacted.
pub fn shown_value(name: &str, value: &str) -> (String, bool) {
    if looks_secret(name) {
        return (REDACTED.to_owned(), true);
    }
    let shown = redact_urls(value);
    let redacted = shown != value;
    (shown, redacted)
}

/// The server's environment, sorted by name.
pub fn environment() -> Value {
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let list: Vec<Value> = vars
        .iter()
        .map(|(name, value)| {
            let (value, redacted) = shown_value(name, value);
            json!({ "name": name, "value": value, "redacted": redacted })
        })
        .collect();
    json!({ "count": list.len(), "variables": list })
}

/// Redacts a JSON tree: strings under secret-looking keys become `***`, URL passwords anywhere.
fn redact_tree(key: Option<&str>, v: &mut Value) {
    match v {
        Value::String(s) => {
            if key.is_some_and(looks_secret) && !s.is_empty() {
                *s = REDACTED.to_owned();
            } else {
                *s = redact_urls(s);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_tree(key, i)),
        Value::Object(map) => map.iter_mut().for_each(|(k, i)| redact_tree(Some(k), i)),
        _ => {}
    }
}

/// The effective configuration the server started with (defaults < file < environment <
/// flags), secrets redacted, plus the values derived from it.
pub fn startup_properties(config: &Config) -> Value {
    let mut properties = serde_json::to_value(config).unwrap_or_default();
    redact_tree(None, &mut properties);
    json!({
        "properties": properties,
        "effective": {
            "database_url": config.redacted_database_url(),
            "base_url": redact_urls(&config.base_url()),
        },
        "version": env!("CARGO_PKG_VERSION"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_and_url_passwords_are_redacted() {
        for name in [
            "DB_PASSWORD",
            "github_token",
            "AWS_SECRET_ACCESS_KEY",
            "pgpass",
            "X_AUTH",
            "cookie_jar",
            "ssh_key",
        ] {
            assert!(looks_secret(name), "{name}");
            assert_eq!(shown_value(name, "hunter2"), (REDACTED.to_owned(), true));
        }
        for name in ["PATH", "HOME", "LANG", "CRYOWARDEN_LISTEN"] {
            assert!(!looks_secret(name), "{name}");
        }
        assert_eq!(
            redact_urls("postgres://cw:s3cr@t@db.example:5432/cw?sslmode=require"),
            "postgres://cw:***@db.example:5432/cw?sslmode=require"
        );
        assert_eq!(
            redact_urls(
                "a=https://u:p@h/x, b=redis://:pw@r:6379 c=http://plain/x d=sqlite:///tmp/x.db"
            ),
            "a=https://u:***@h/x, b=redis://:***@r:6379 c=http://plain/x d=sqlite:///tmp/x.db"
        );
        assert_eq!(redact_urls("smtp://user@mail"), "smtp://user@mail");
        assert_eq!(redact_urls("no url at all ://"), "no url at all ://");
        assert_eq!(redact_urls("ünï://ü:ß@h"), "ünï://ü:***@h");
    }

    #[test]
    fn startup_properties_hide_the_database_password() {
        let config = Config {
            database_url: "postgres://cw:topsecret@127.0.0.1/cw".into(),
            ..Config::default()
        };
        let v = startup_properties(&config);
        let text = v.to_string();
        assert!(!text.contains("topsecret"), "{text}");
        assert_eq!(
            v["properties"]["database_url"],
            "postgres://cw:***@127.0.0.1/cw"
        );
        assert_eq!(
            v["effective"]["database_url"],
            "postgres://cw:***@127.0.0.1/cw"
        );
        assert_eq!(v["properties"]["max_body_kib"], 1024);
    }
}
