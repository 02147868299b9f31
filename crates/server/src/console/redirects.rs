//! external-redirect-hosts: the hosts the sign-in page may send someone on to after signing in
//! (an absolute `next=` URL, http or https, whose host is listed); anything else is followed
//! only as a local path.

use serde::{Deserialize, Serialize};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::db::Db;
use crate::error::StoreError;

pub const FIELDS: &[Field] = &[super::f(
    "hosts",
    "Allowed hosts, one per line (e.g. wiki.facility.example)",
    Kind::Lines,
)];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectHosts {
    pub hosts: Vec<String>,
}

impl Stored for RedirectHosts {
    const KEY: &'static str = "console:external-redirect-hosts";
    const FIELDS: &'static [&'static str] = &["hosts"];
    fn validate(&self) -> Result<(), StoreError> {
        if self.hosts.len() > 200 {
            return Err(StoreError::invalid("hosts", "at most 200 hosts"));
        }
        for h in &self.hosts {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-')
                })
                && url::Host::parse(h).is_ok();
            if !ok {
                return Err(StoreError::invalid(
                    "hosts",
                    format!(
                        "`{}` is not a host name: lower-case letters, digits, dots and dashes, no scheme, port or path",
                        h.chars().take(60).collect::<String>()
                    ),
                ));
            }
        }
        Ok(())
    }
}

pub async fn hosts(db: &Db) -> Result<Vec<String>, StoreError> {
    Ok(store::load::<RedirectHosts>(db).await?.hosts)
}

/// Where to go after signing in: a local path, or an absolute http(s) URL on one of `hosts`;
/// anything else is the home page.
///
/// A local path starts with exactly one `/` and holds no control character (browsers drop tabs
/// and newlines from URLs, so `/\t/evil.example` would become `//evil.example`), no backslash
/// (read as `/`) and, once percent-decoded, none of those either. What comes back is always a
/// valid `Location` value.
pub fn safe_next(next: Option<&str>, hosts: &[String]) -> String {
    let Some(n) = next else { return "/".to_owned() };
    if local_path(n) {
        return n.to_owned();
    }
    if hosts.is_empty()
        || n.contains('\\')
        || n.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return "/".to_owned();
    }
    match url::Url::parse(n) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && n.get(..u.scheme().len() + 3)
                    .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", u.scheme())))
                && u.username().is_empty()
                && u.password().is_none()
                && u.host_str()
                    .is_some_and(|h| hosts.iter().any(|x| x.eq_ignore_ascii_case(h))) =>
        {
            u.to_string()
        }
        _ => "/".to_owned(),
    }
}

/// A path on this server: one leading `/`, then no second `/` or `\\`, no control characters,
/// whitespace or backslashes, also after percent-decoding, and only characters a `Location`
/// header may carry.
fn local_path(n: &str) -> bool {
    let plain = |s: &str| {
        s.starts_with('/')
            && !s.starts_with("//")
            && !s.contains('\\')
            && !s.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    let decoded = percent_encoding::percent_decode_str(n).decode_utf8_lossy();
    plain(n) && plain(&decoded) && n.len() <= 2048 && n.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_and_local_paths_are_followed() {
        let hosts = vec!["wiki.facility.example".to_owned()];
        assert_eq!(safe_next(Some("/projects/3"), &hosts), "/projects/3");
        assert_eq!(
            safe_next(Some("https://wiki.facility.example/page"), &hosts),
            "https://wiki.facility.example/page"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "https://wiki.facility.example@evil.example/",
            "https://user@wiki.facility.example/",
            "javascript:alert(1)",
            "https://wiki.facility.example.evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\\/evil.example",
            "//evil.example",
            "///evil.example",
            "https:evil.example",
            "https:/wiki.facility.example/",
            "http:\\\\wiki.facility.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "/%09/evil.example",
            "/x\nSet-Cookie: a=b",
            " /x",
            "/caf\u{e9}",
            "data:text/html,hi",
        ] {
            assert_eq!(safe_next(Some(bad), &hosts), "/", "{bad}");
        }
        assert_eq!(safe_next(Some("https://wiki.facility.example/"), &[]), "/");
    }
}
