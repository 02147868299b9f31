//! external-redirect-hosts: the hosts the sign-in page may send someone on to after signing in
//! (an absolute `next=` URL, http or https, whose host is listed); anything else is followed
//! only as a local path.

use serde::{Deserialize, Serialize};

use super::store::{self, Stored};
use super::{Field, Kind};
use crate::db::Db;
use crate::error::StoreError;

pub const FIELDS: &[Field] =
    &[super::f("hosts", "Allowed hosts, one per line (e.g. wiki.facility.example)", Kind::Lines)];

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
                && h.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
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
pub fn safe_next(next: Option<&str>, hosts: &[String]) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        Some(n) if !hosts.is_empty() && !n.contains('\\') && !n.chars().any(char::is_control) => {
            match url::Url::parse(n) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.host_str().is_some_and(|h| hosts.iter().any(|x| x.eq_ignore_ascii_case(h))) =>
                {
                    u.to_string()
                }
                _ => "/".to_owned(),
            }
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_and_local_paths_are_followed() {
        let hosts = vec!["wiki.facility.example".to_owned()];
        assert_eq!(safe_next(Some("/projects/3"), &hosts), "/projects/3");
        assert_eq!(safe_next(Some("https://wiki.facility.example/page"), &hosts), "https://wiki.facility.example/page");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "https://wiki.facility.example@evil.example/",
            "https://user@wiki.facility.example/",
            "javascript:alert(1)",
            "https://wiki.facility.example.evil.example/",
            "/\\evil.example",
        ] {
            assert_eq!(safe_next(Some(bad), &hosts), "/", "{bad}");
        }
        assert_eq!(safe_next(Some("https://wiki.facility.example/"), &[]), "/");
    }
}
