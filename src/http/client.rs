//! Who is on the other end: the client IP and whether the request came over https.
//!
//! Forwarding headers (`X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`) are believed only
//! when the TCP peer is a configured trusted proxy; otherwise anyone could pick their own IP
//! and walk around rate limits and blacklists. `X-Forwarded-For` is read right to left,
//! skipping trusted proxies, so the address is the last one a trusted hop vouched for.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    http::{HeaderMap, request::Parts},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

/// The request's client, computed once per request by [`resolve_client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientMeta {
    pub ip: IpAddr,
    pub https: bool,
}

/// The configured trusted proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client as seen through the proxies.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientMeta {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return ClientMeta { ip: peer, https: false };
        }
        let https =
            headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
            });
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut ip = peer;
        if forwarded.is_empty() {
            if let Some(real) = headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
            {
                ip = canonical(real);
            }
        } else {
            for hop in forwarded.iter().rev() {
                match hop.parse::<IpAddr>() {
                    Ok(addr) => {
                        ip = canonical(addr);
                        if !self.trusts(ip) {
                            break;
                        }
                    }
                    // Garbage in the chain: stop at the last address we could vouch for.
                    Err(_) => break,
                }
            }
        }
        ClientMeta { ip, https }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Middleware: computes [`ClientMeta`] and stores it in the request extensions.
pub async fn resolve_client(
    axum::extract::State(proxies): axum::extract::State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let meta = proxies.client(peer, request.headers());
    request.extensions_mut().insert(meta);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientMeta>()
            .copied()
            .unwrap_or(ClientMeta { ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED), https: false }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_ip() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let meta = proxies.client(
            peer,
            &headers(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-real-ip", "5.6.7.8"),
                ("x-forwarded-proto", "https"),
            ]),
        );
        assert_eq!(meta, ClientMeta { ip: peer, https: false });
    }

    #[test]
    fn trusted_proxy_chain_is_read_right_to_left() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        // The client forged the first entry; the proxy appended the real one.
        let meta = proxies.client(
            peer,
            &headers(&[
                ("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.3"),
                ("x-forwarded-proto", "https"),
            ]),
        );
        assert_eq!(meta.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert!(meta.https);
    }

    #[test]
    fn real_ip_and_garbage() {
        let proxies = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.client(peer, &headers(&[("x-real-ip", "192.0.2.1")])).ip,
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            proxies.client(peer, &headers(&[("x-forwarded-for", "nonsense' or 1=1")])).ip,
            peer
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            proxies.client(mapped, &headers(&[("x-real-ip", "192.0.2.1")])).ip,
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
