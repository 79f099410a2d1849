//! Where webhooks may go. A merchant's URL must never become a way into the platform's own
//! network, so deliveries go only to **globally reachable unicast** addresses — an
//! allow-list, not a list of what to refuse:
//!
//! - IPv4: any address outside the blocks of the IANA IPv4 Special-Purpose Address Registry
//!   (loopback, private, shared/CGNAT, link-local and cloud metadata, "this network", the IETF
//!   protocol block `192.0.0.0/24`, documentation, benchmarking, AS112, AMT, the old 6to4
//!   relay anycast), multicast, reserved or broadcast;
//! - IPv6: only global unicast (`2000::/3`), and within it none of the registry's
//!   special-purpose blocks (`2001::/23` with Teredo, documentation `2001:db8::/32` and
//!   `3fff::/20`, 6to4 `2002::/16`, SRv6 `5f00::/16`). Everything outside `2000::/3` is refused,
//!   and with it every form that carries an IPv4 address inside IPv6 (`::/96`,
//!   `::ffff:0:0/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`): a translator would take such
//!   an address straight to the IPv4 behind it.
//!
//! Checked when the URL is saved and again for every delivery, and on the addresses its name
//! resolves to at the moment of connecting (a name that later points inside — DNS rebinding —
//! is refused too). Redirects are never followed: an answer of 3xx is a failed delivery.
//! `webhooks_allow_private` lifts this (tests, or a platform that delivers on its own network
//! on purpose).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// IPv4 blocks that are not globally reachable unicast (IANA IPv4 Special-Purpose Address
/// Registry, plus multicast and the reserved space).
const V4_REFUSED: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    (Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(192, 175, 48, 0), 24), // direct delegation AS112
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and the limited broadcast address
];

/// Special-purpose blocks inside IPv6 global unicast (`2000::/3`) that are refused.
const V6_REFUSED: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo…)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // SRv6 SIDs
];

/// Whether `ip` is a globally reachable unicast address.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !V4_REFUSED.iter().any(|(net, len)| Ipv4Net::new_assert(*net, *len).contains(&v4))
        }
        IpAddr::V6(v6) => {
            let global_unicast = Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);
            global_unicast.contains(&v6)
                && !V6_REFUSED
                    .iter()
                    .any(|(net, len)| Ipv6Net::new_assert(*net, *len).contains(&v6))
        }
    }
}

/// Whether deliveries may go to `ip`.
pub fn allowed_ip(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        return !ip.is_unspecified();
    }
    is_global(ip)
}

/// Checks a webhook URL as typed: http(s), a host, no credentials, at most 2,048
/// characters; an IP-literal host must be an allowed address. Returns it normalized.
pub fn check_url(raw: &str, allow_private: bool) -> Result<String, &'static str> {
    let url = url::Url::parse(raw.trim()).map_err(|_| "not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("webhooks are http(s) URLs");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put no credentials in the URL; verify the signature instead");
    }
    let host = url.host().ok_or("the URL has no host")?;
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(d) => {
            if !allow_private
                && (d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal"))
            {
                return Err("deliveries to this platform's own network are not allowed");
            }
            None
        }
    };
    if literal.is_some_and(|ip| !allowed_ip(ip, allow_private)) {
        return Err("webhooks go to public internet addresses only");
    }
    let text = url.to_string();
    if text.len() > 2048 {
        return Err("at most 2,048 characters");
    }
    Ok(text)
}

/// A resolver that drops the addresses deliveries may not go to (and fails when none is
/// left), so the connection is made only to an address that passed the check.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed_ip(a.ip(), allow_private))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address deliveries may go to").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client deliveries use: guarded resolution, no redirects, 10 s timeout.
pub fn client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(concat!("kefu-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every special-purpose block of the IANA registries (and the forms that smuggle an
    /// IPv4 address inside IPv6) is refused: its first, a middle and its last address.
    #[test]
    fn only_globally_reachable_unicast_is_allowed() {
        let refused = [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.31.196.0/24",
            "192.52.193.0/24",
            "192.88.99.0/24",
            "192.168.0.0/16",
            "192.175.48.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "255.255.255.255/32",
            "::/128",
            "::1/128",
            "::/96",
            "::ffff:0:0/96",
            "64:ff9b::/96",
            "64:ff9b:1::/48",
            "100::/64",
            "2001::/23",
            "2001::/32",
            "2001:2::/48",
            "2001:10::/28",
            "2001:20::/28",
            "2001:db8::/32",
            "2002::/16",
            "3fff::/20",
            "5f00::/16",
            "fc00::/7",
            "fe80::/10",
            "fec0::/10",
            "ff00::/8",
        ];
        for block in refused {
            let net: ipnet::IpNet = block.parse().unwrap();
            let (first, last) = (net.network(), net.broadcast());
            let middle = match (first, last) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) / 2 + u32::from(b) / 2))
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) / 2 + u128::from(b) / 2))
                }
                _ => unreachable!(),
            };
            for ip in [first, middle, last] {
                assert!(!allowed_ip(ip, false), "{ip} in {block}");
            }
        }
        // The examples, as written.
        for bad in
            ["::7f00:1", "::ffff:0:7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "192.0.0.170"]
        {
            assert!(!allowed_ip(bad.parse().unwrap(), false), "{bad}");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "192.0.3.1",
            "100.128.0.1",
            "2606:2800:220:1:248:1893:25c8:1946",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
        ] {
            assert!(allowed_ip(good.parse().unwrap(), false), "{good}");
        }
        assert!(allowed_ip("127.0.0.1".parse().unwrap(), true), "allowed by configuration");
        assert!(!allowed_ip("0.0.0.0".parse().unwrap(), true), "never the unspecified address");
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            check_url(" https://hooks.shop.example/kefu ", false).unwrap(),
            "https://hooks.shop.example/kefu"
        );
        for bad in [
            "ftp://x.example/",
            "https://user:pw@x.example/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/",
            "not a url",
            "http://10.0.0.5/",
            "http://[::7f00:1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::1]/",
            "http://192.0.0.1/",
            "http://0x7f000001/",
            "http://2130706433/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
    }
}
