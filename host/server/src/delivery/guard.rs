//! SSRF protection: webhooks only reach public addresses unless the
//! operator allows a network.
//!
//! The check runs on the addresses actually connected to: the HTTP client
//! resolves names through [`GuardedResolver`], which drops every refused
//! address before the connector sees it, so a name cannot pass a check and
//! then be re-resolved elsewhere (no DNS-rebinding gap). IP literals skip
//! resolution in the client, so [`NetworkGuard::check_url`] checks them
//! before the request is made. Redirects are never followed and proxies
//! never used, so no other hop exists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::DeliverySettings;

/// A refusal, found in a request error's source chain to classify it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Which addresses webhooks may reach, and over which schemes.
#[derive(Debug, Clone, Default)]
pub struct NetworkGuard {
    allow: Vec<IpNet>,
    https_only: bool,
}

impl NetworkGuard {
    /// Public addresses plus the `allow`ed networks, over http or https.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow, https_only: false }
    }

    /// The guard `settings` describe.
    pub fn from_settings(settings: &DeliverySettings) -> Self {
        Self { allow: settings.allow_networks.clone(), https_only: settings.require_https }
    }

    /// Why `ip` may not be reached, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let reason = special_range(ip)?;
        if self.allow.iter().any(|n| n.contains(&ip)) { None } else { Some(reason) }
    }

    /// Checks a URL whose host is an IP literal; names are checked when
    /// resolved. Also refuses schemes other than http and https. Returns
    /// the parsed URL, so the request does not parse it again.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Refused(format!("invalid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused(format!("scheme {:?} is not http or https", parsed.scheme())));
        }
        if self.https_only && parsed.scheme() != "https" {
            // Plain http would carry the URL's secret and the payload in clear.
            return Err(Refused(
                "plain http is not allowed: webhooks must use https (delivery.require_https, \
                 RUNHOOK_DELIVERY_REQUIRE_HTTPS)"
                    .into(),
            ));
        }
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(parsed),
        };
        match self.refusal(ip) {
            Some(reason) => Err(Refused(refusal_message(&ip.to_string(), ip, reason))),
            None => Ok(parsed),
        }
    }
}

impl NetworkGuard {
    /// Checks a webhook target when a rule is saved, so a rule that could
    /// never deliver is refused then rather than failing each delivery: an
    /// IP literal as [`NetworkGuard::check_url`] does, a name by resolving
    /// it (for at most `SAVE_LOOKUP`) and refusing it when every address it
    /// resolves to is refused. A name that does not resolve now is
    /// accepted: it may later, and each connection is checked anyway.
    pub async fn check_target(&self, url: &str) -> Result<(), Refused> {
        let parsed = self.check_url(url)?;
        let Some(url::Host::Domain(host)) = parsed.host() else { return Ok(()) };
        let lookup = tokio::net::lookup_host((host, 0));
        let Ok(Ok(found)) = tokio::time::timeout(SAVE_LOOKUP, lookup).await else { return Ok(()) };
        let mut refused = None;
        for addr in found {
            match self.refusal(addr.ip()) {
                None => return Ok(()),
                Some(reason) => {
                    refused.get_or_insert((addr.ip(), reason));
                }
            }
        }
        match refused {
            Some((ip, reason)) => Err(Refused(refusal_message(host, ip, reason))),
            None => Ok(()),
        }
    }
}

/// The longest a rule's save waits for its webhook's name to resolve.
const SAVE_LOOKUP: std::time::Duration = std::time::Duration::from_secs(2);

fn refusal_message(host: &str, ip: IpAddr, reason: &str) -> String {
    format!(
        "{host} resolves to {ip}, a {reason} address; webhooks only reach public addresses unless \
         delivery.allow_networks (RUNHOOK_ALLOW_NETWORKS) includes it"
    )
}

/// The range `ip` belongs to when it is not a public unicast address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (127, ..) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local or cloud metadata (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        (240..=255, ..) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let s = ip.segments();
    // Addresses that embed an IPv4 address are judged by it.
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified (::)",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback (::1)",
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return special_v4(embedded(hi, lo)),
        [0x2002, hi, lo, ..] => return special_v4(embedded(hi, lo)),
        [0, 0, 0, 0, 0, 0, ..] => "IPv4-compatible (::/96)",
        [0x0100, 0, 0, 0, ..] => "discard (100::/64)",
        [0x2001, 0x0db8, ..] => "documentation (2001:db8::/32)",
        [0x2001, b, ..] if b < 0x200 => "IETF protocol assignment (2001::/23)",
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [x, ..] if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        _ => return None,
    })
}

/// The HTTP client's resolver: the system's, minus refused addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<NetworkGuard>,
}

impl GuardedResolver {
    /// A resolver enforcing `guard`.
    pub fn new(guard: Arc<NetworkGuard>) -> Self {
        Self { guard }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.refusal(a.ip()) {
                    Some(reason) => {
                        refused.get_or_insert((a.ip(), reason));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty()
                && let Some((ip, reason)) = refused
            {
                return Err(Box::new(Refused(refusal_message(&host, ip, reason))) as Box<_>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        NetworkGuard::default().refusal(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn refuses_non_public_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.0.10",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn allow_list_opens_exactly_its_networks() {
        let guard = NetworkGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.refusal("127.0.0.1".parse().unwrap()).is_none());
        assert!(guard.refusal("10.0.0.1".parse().unwrap()).is_some());
        assert!(guard.check_url("http://127.0.0.1:9/x").is_ok());
        let err = guard.check_url("http://[::1]:9/x").unwrap_err().to_string();
        assert!(err.contains("loopback") && err.contains("RUNHOOK_ALLOW_NETWORKS"), "{err}");
        assert!(guard.check_url("http://169.254.169.254/latest/meta-data").is_err());
        assert!(guard.check_url("file:///etc/passwd").is_err());
        assert!(guard.check_url("https://hooks.example.com/x").is_ok());
    }

    #[test]
    fn https_only_refuses_plain_http_everywhere() {
        let settings = DeliverySettings {
            require_https: true,
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..DeliverySettings::default()
        };
        let guard = NetworkGuard::from_settings(&settings);
        let err = guard.check_url("http://hooks.example.com/x?token=s").unwrap_err().to_string();
        assert!(err.contains("plain http") && err.contains("RUNHOOK_DELIVERY_REQUIRE_HTTPS") && !err.contains("token"));
        assert!(guard.check_url("http://127.0.0.1:9/x").is_err(), "allowed networks too");
        assert!(guard.check_url("https://hooks.example.com/x").is_ok());
        assert!(guard.check_url("https://127.0.0.1:9/x").is_ok());
        assert!(
            NetworkGuard::from_settings(&DeliverySettings::default()).check_url("http://hooks.example.com/").is_ok()
        );
    }

    #[tokio::test]
    async fn a_target_is_checked_when_saved_on_what_it_resolves_to() {
        let strict = NetworkGuard::default();
        let err = strict.check_target("http://localhost:9/hook").await.unwrap_err().to_string();
        assert!(err.contains("localhost resolves to") && err.contains("loopback"), "{err}");
        assert!(strict.check_target("http://10.1.2.3/hook").await.is_err());
        // A name that does not resolve now may later: accepted.
        assert!(strict.check_target("https://runhook-test.invalid/hook").await.is_ok());
        let open = NetworkGuard::new(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(open.check_target("http://localhost:9/hook").await.is_ok());
        assert!(open.check_target("http://10.1.2.3/hook").await.is_err());
    }

    #[tokio::test]
    async fn resolver_drops_refused_addresses() {
        use reqwest::dns::Resolve;
        let resolver = GuardedResolver::new(Arc::new(NetworkGuard::default()));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = resolver.resolve(name).await.err().unwrap().to_string();
        assert!(err.contains("localhost resolves to") && err.contains("loopback"), "{err}");
        let open = GuardedResolver::new(Arc::new(NetworkGuard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])));
        let addrs: Vec<SocketAddr> = open.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!addrs.is_empty());
    }
}
