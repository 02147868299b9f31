//! The client's address behind reverse proxies (`trusted_proxies` in the configuration). Only
//! when the connection comes from a trusted proxy are `Forwarded` (RFC 7239) or, without it,
//! `X-Forwarded-For` read, from the right: the first address that is not itself a trusted proxy
//! is the client. Anyone else's forwarding headers are ignored, so a client cannot choose the
//! address its failed sign-ins are counted against, or the one its audit events name.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::error::StoreError;

#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses the configured CIDRs (a bare address is a /32 or /128).
    pub fn parse(cidrs: &[String]) -> Result<TrustedProxies, StoreError> {
        let nets = cidrs
            .iter()
            .map(|c| {
                let c = c.trim();
                c.parse::<IpNet>().or_else(|_| c.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                    StoreError::Config(format!(
                        "trusted_proxies: `{c}` is not an address or CIDR (e.g. 10.0.0.0/8, 192.0.2.7, ::1/128)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return peer;
        }
        let forwarded: Vec<Option<IpAddr>> = if headers.contains_key("forwarded") {
            headers
                .get_all("forwarded")
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("").split(','))
                .map(|element| {
                    element.split(';').find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| parse_addr(v.trim().trim_matches('"')))
                    })?
                })
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("").split(','))
                .map(|a| parse_addr(a.trim()))
                .collect()
        };
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            match hop {
                Some(ip) if self.trusted(ip) => client = ip,
                Some(ip) => return ip,
                // An entry a trusted proxy passed on but that is no address (`unknown`, an
                // obfuscated name, garbage): the nearest trusted hop is the best we know.
                None => return client,
            }
        }
        client
    }
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` or `2001:db8::1`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_rightmost_untrusted_hop_wins() {
        let t = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("127.0.0.1");
        let xff = |v: &str| headers(&[("x-forwarded-for", v)]);
        assert_eq!(t.client(proxy, &xff("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(
            t.client(proxy, &xff("1.1.1.1, 203.0.113.9")),
            ip("203.0.113.9"),
            "a forged left part is ignored"
        );
        assert_eq!(
            t.client(proxy, &xff("203.0.113.9, 10.1.2.3")),
            ip("203.0.113.9"),
            "through two proxies"
        );
        assert_eq!(
            t.client(proxy, &xff("10.1.2.3")),
            ip("10.1.2.3"),
            "all trusted: the leftmost"
        );
        assert_eq!(t.client(proxy, &xff("garbage, 10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(
            t.client(proxy, &xff("[2001:db8::7]:4711")),
            ip("2001:db8::7")
        );
        assert_eq!(
            t.client(proxy, &HeaderMap::new()),
            proxy,
            "no header: the proxy itself"
        );
        let fwd = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::5]:80\";proto=https",
        )]);
        assert_eq!(t.client(proxy, &fwd), ip("2001:db8::5"));
        let both = headers(&[
            ("forwarded", "for=198.51.100.4"),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(
            t.client(proxy, &both),
            ip("198.51.100.4"),
            "Forwarded first"
        );
        assert_eq!(
            t.client(ip("192.0.2.50"), &xff("203.0.113.9")),
            ip("192.0.2.50"),
            "an untrusted peer's header"
        );
        assert_eq!(
            t.client(ip("::ffff:127.0.0.1"), &xff("203.0.113.9")),
            ip("203.0.113.9"),
            "v4-mapped peer"
        );
        assert_eq!(
            TrustedProxies::default().client(proxy, &xff("203.0.113.9")),
            proxy,
            "none trusted by default"
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }
}
