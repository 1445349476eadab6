//! Where webhooks may go (issue 9, SSRF). Anyone with a secret key can make the control plane
//! POST to a URL of their choosing; without this, that is a port scanner and a way into the
//! metadata service and everything else on the control plane's private network.
//!
//! * [`allowed`] is the rule (pure, table-tested): only globally routable unicast addresses.
//! * [`check_url`] applies it when an endpoint is created: every address the host resolves to
//!   must be allowed.
//! * [`GuardedResolver`] applies it again at connect time (DNS can change between the check and
//!   the delivery: rebinding); [`check_literal`] covers IP-literal URLs, which skip DNS.
//! * [`summarize`] turns a transport error into a short fixed phrase, so the deliveries list
//!   tells an operator what went wrong without echoing OS or TLS text (which would also tell a
//!   scanner what is listening where).
//!
//! `--allow-private-webhook-urls` turns the address rule off for local development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::platform::validate::{Invalid, invalid};

/// Whether a webhook may be delivered to `ip`: not loopback, private, link-local (the cloud
/// metadata address included), shared (CGNAT), multicast, broadcast, unspecified, documentation
/// or otherwise reserved. The blocks are IANA's special-purpose address registries (IPv4 and
/// IPv6) minus the few entries marked globally reachable there (which are allowed), plus
/// multicast; each has a row in the tests below.
pub fn allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => allowed_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => allowed_v4(v4),
            None => allowed_v6(v6),
        },
    }
}

fn allowed_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated), RFC 7526
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved
}

fn allowed_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, 2001:db8::/32
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation, 3fff::/20 (RFC 9637)
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, 2001::/23: Teredo
                                             // (2001::/32, embeds an IPv4 address), benchmarking,
                                             // ORCHID, AMT, AS112
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: may embed a private IPv4 address
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] <= 1) // discard-only 100::/64,
                                                                   // dummy 100:0:0:1::/64
        || (s[0] == 0x5f00) // SRv6 SIDs, 5f00::/16 (RFC 9602)
        || (s[0] == 0x2002) // 6to4: embeds an IPv4 address
        || ip.to_ipv4().is_some()) // IPv4-compatible (deprecated)
}

fn refused(addr: IpAddr) -> Invalid {
    invalid(
        "url",
        format!(
            "resolves to {addr}, a loopback, private, link-local, multicast or reserved address; \
             webhooks go to public addresses only (--allow-private-webhook-urls lifts this for \
             local development)"
        ),
    )
}

/// An IP-literal host's address, if the URL has one.
fn literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Refuses an IP-literal URL whose address is not allowed (DNS names pass: the resolver checks
/// those).
pub fn check_literal(url: &url::Url) -> Result<(), Invalid> {
    match literal(url) {
        Some(ip) if !allowed(ip) => Err(refused(ip)),
        _ => Ok(()),
    }
}

/// The create-time check: the URL's host must resolve, and only to allowed addresses.
pub async fn check_url(url: &url::Url) -> Result<(), Invalid> {
    check_literal(url)?;
    if literal(url).is_some() {
        return Ok(());
    }
    let host = url
        .host_str()
        .ok_or_else(|| invalid("url", "must have a host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::lookup_host((host, port)),
    )
    .await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) | Err(_) => {
            return Err(invalid("url", format!("host '{host}' does not resolve")));
        }
    };
    if addrs.is_empty() {
        return Err(invalid("url", format!("host '{host}' does not resolve")));
    }
    match addrs.iter().find(|a| !allowed(a.ip())) {
        Some(bad) => Err(refused(bad.ip())),
        None => Ok(()),
    }
}

/// reqwest's resolver for deliveries: the system's lookup, minus every address [`allowed`]
/// refuses. A name that now resolves only to refused addresses fails to connect.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

/// The error a refused resolution carries, found again by [`summarize`].
#[derive(Debug, thiserror::Error)]
#[error("address not allowed")]
pub struct AddressRefused;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allowed(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A short, fixed description of why a delivery did not get a response.
pub fn summarize(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        return "timeout";
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<AddressRefused>().is_some() {
            return "address not allowed";
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused",
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                    "connection reset"
                }
                std::io::ErrorKind::TimedOut => "timeout",
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    "host unreachable"
                }
                _ if err.is_connect() => "connection failed",
                _ => "request failed",
            };
        }
        source = e.source();
    }
    if err.is_connect() {
        "connection failed"
    } else if err.is_redirect() {
        "redirect not followed"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_allowed() {
        let cases: &[(&str, bool)] = &[
            ("127.0.0.1", false),
            ("127.255.0.9", false),
            ("10.0.0.1", false),
            ("172.16.5.4", false),
            ("172.31.255.255", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false), // cloud metadata
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("240.0.0.1", false),
            ("192.0.2.10", false),
            ("198.18.0.1", false),
            ("::1", false),
            ("::", false),
            ("fe80::1", false),
            ("fd00::1", false),
            ("fc00::1", false),
            ("ff02::1", false),
            ("::ffff:127.0.0.1", false), // IPv4-mapped loopback
            ("::ffff:10.1.2.3", false),
            ("64:ff9b::a00:1", false),
            ("2002:a00:1::", false),
            ("2001:db8::1", false),
            // IANA's IPv4 special-purpose registry, one address per block.
            ("0.0.0.1", false),         // 0.0.0.0/8 this network
            ("10.255.0.1", false),      // 10.0.0.0/8 private
            ("100.127.255.1", false),   // 100.64.0.0/10 shared
            ("127.0.0.2", false),       // 127.0.0.0/8 loopback
            ("169.254.0.1", false),     // 169.254.0.0/16 link-local
            ("172.20.0.1", false),      // 172.16.0.0/12 private
            ("192.0.0.8", false),       // 192.0.0.0/24 IETF protocol assignments
            ("192.0.0.170", false),     // 192.0.0.170/31 NAT64 discovery
            ("192.0.2.1", false),       // 192.0.2.0/24 TEST-NET-1
            ("192.88.99.1", false),     // 192.88.99.0/24 6to4 relay anycast
            ("192.168.255.1", false),   // 192.168.0.0/16 private
            ("198.19.0.1", false),      // 198.18.0.0/15 benchmarking
            ("198.51.100.1", false),    // 198.51.100.0/24 TEST-NET-2
            ("203.0.113.1", false),     // 203.0.113.0/24 TEST-NET-3
            ("250.0.0.1", false),       // 240.0.0.0/4 reserved
            ("255.255.255.255", false), // limited broadcast
            ("239.1.1.1", false),       // multicast
            ("192.31.196.1", true),     // AS112-v4: globally reachable in the registry
            ("192.175.48.1", true),     // direct delegation AS112: globally reachable
            // IANA's IPv6 special-purpose registry.
            ("::2", false),                 // ::/96 IPv4-compatible (deprecated)
            ("::ffff:192.168.0.1", false),  // ::ffff:0:0/96 IPv4-mapped
            ("64:ff9b::808:808", false),    // 64:ff9b::/96 IPv4/IPv6 translation
            ("64:ff9b:1::1", false),        // 64:ff9b:1::/48 local-use translation
            ("100::1", false),              // 100::/64 discard-only
            ("100:0:0:1::1", false),        // 100:0:0:1::/64 dummy prefix
            ("2001::1", false),             // 2001::/32 Teredo
            ("2001:0:4136:e378::1", false), // Teredo with an embedded address
            ("2001:1::1", false),           // 2001:1::1/128 port control anycast
            ("2001:2::1", false),           // 2001:2::/48 benchmarking
            ("2001:3::1", false),           // 2001:3::/32 AMT
            ("2001:4:112::1", false),       // 2001:4:112::/48 AS112-v6
            ("2001:10::1", false),          // 2001:10::/28 ORCHID (deprecated)
            ("2001:20::1", false),          // 2001:20::/28 ORCHIDv2
            ("2001:1ff::1", false),         // the rest of 2001::/23
            ("2001:db8:ffff::1", false),    // 2001:db8::/32 documentation
            ("2002::1", false),             // 2002::/16 6to4
            ("3fff:fff::1", false),         // 3fff::/20 documentation
            ("5f00::1", false),             // 5f00::/16 SRv6 SIDs
            ("fc00::2", false),             // fc00::/7 unique local
            ("fe80::2", false),             // fe80::/10 link-local
            ("fec0::1", false),             // fec0::/10 site-local (deprecated)
            ("ff0e::1", false),             // multicast
            ("2001:200::1", true),          // just past 2001::/23: ordinary unicast
            ("3fff:1000::1", true),         // just past 3fff::/20
            ("2620:4f:8000::1", true),      // direct delegation AS112: globally reachable
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            ("172.32.0.1", true),
            ("100.128.0.1", true),
            ("::ffff:8.8.8.8", true),
            ("2606:4700:4700::1111", true),
        ];
        for (ip, want) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(allowed(parsed), *want, "{ip}");
        }
    }

    #[test]
    fn literals_are_checked_without_dns() {
        for (url, ok) in [
            ("http://127.0.0.1:22/", false),
            ("http://[::1]/", false),
            ("http://169.254.169.254/latest/meta-data", false),
            ("https://8.8.8.8/hook", true),
            ("https://hooks.example.com/x", true), // the resolver's job
        ] {
            let u = url::Url::parse(url).unwrap();
            assert_eq!(check_literal(&u).is_ok(), ok, "{url}");
        }
    }

    /// The connect-time half (DNS rebinding): a name that resolves only to loopback yields no
    /// address to connect to.
    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let resolved = GuardedResolver.resolve(name).await;
        match resolved {
            Ok(addrs) => {
                let left: Vec<SocketAddr> = addrs.collect();
                panic!("localhost resolved to {left:?}");
            }
            Err(e) => assert!(e.downcast_ref::<AddressRefused>().is_some(), "{e}"),
        }
        let url = url::Url::parse("http://localhost:9/").unwrap();
        assert!(check_url(&url).await.is_err());
    }
}
