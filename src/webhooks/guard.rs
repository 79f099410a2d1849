//! Where webhooks may go. A merchant's URL must never become a way into the platform's own
//! network: deliveries to loopback, private (RFC 1918, unique-local), link-local (cloud
//! metadata at 169.254.169.254), CGNAT, multicast, broadcast, documentation or unspecified
//! addresses are refused — checked when the URL is saved and again for every delivery, on
//! the addresses the name resolves to at that moment (a name that later points inside is
//! refused too). Redirects are not followed. `webhooks_allow_private` lifts this (tests,
//! or a platform that delivers on its own network on purpose).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether deliveries may go to `ip`.
pub fn allowed_ip(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        return !ip.is_unspecified();
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
                || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return allowed_ip(IpAddr::V4(v4), false);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)) // documentation
        }
    }
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
        return Err("deliveries to private, loopback or link-local addresses are not allowed");
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

    #[test]
    fn inside_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!allowed_ip(bad.parse().unwrap(), false), "{bad}");
        }
        for good in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"] {
            assert!(allowed_ip(good.parse().unwrap(), false), "{good}");
        }
        assert!(allowed_ip("127.0.0.1".parse().unwrap(), true), "allowed by configuration");
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
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
    }
}
