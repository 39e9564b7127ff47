//! Who the client is, behind trusted proxies: `[server] trusted_proxies`.
//!
//! Only a peer in the list may say, in `X-Forwarded-For`, whom it forwards
//! for. The client is then the rightmost address of that header that is
//! not itself a trusted proxy: everything left of it was written by the
//! client, who may write anything. From any other peer the header is
//! dropped and the peer is the client.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// The client a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// The peer is a trusted proxy: its `X-Forwarded-For` is kept and
    /// appended to, not replaced.
    pub via_proxy: bool,
}

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`) and addresses (`192.0.2.1`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{e}` is not an address or a CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that `peer` sent with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        if !self.trusts(peer) {
            return Client {
                ip: peer,
                via_proxy: false,
            };
        }
        let mut ip = peer;
        // Every X-Forwarded-For field, as one list, read from the right.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("").rsplit(','));
        for hop in hops {
            let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                // Not an address: what is left of it cannot be believed.
                break;
            };
            ip = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Client {
            ip,
            via_proxy: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(trusted: &[&str], peer: &str, xff: &[&str]) -> (String, bool) {
        let trusted =
            TrustedProxies::parse(&trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut headers = HeaderMap::new();
        for v in xff {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        let c = trusted.client(peer.parse().unwrap(), &headers);
        (c.ip.to_string(), c.via_proxy)
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        assert_eq!(
            client(&[], "203.0.113.9", &["1.2.3.4"]),
            ("203.0.113.9".into(), false)
        );
        let lb = ["10.0.0.0/8"];
        assert_eq!(
            client(&lb, "203.0.113.9", &["1.2.3.4"]),
            ("203.0.113.9".into(), false)
        );
        assert_eq!(
            client(&lb, "10.1.2.3", &["1.2.3.4"]),
            ("1.2.3.4".into(), true)
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let chain = ["10.0.0.0/8", "192.0.2.7"];
        // The client wrote 6.6.6.6 itself; 1.2.3.4 is who reached the proxies.
        assert_eq!(
            client(&chain, "10.0.0.1", &["6.6.6.6, 1.2.3.4", "192.0.2.7"]),
            ("1.2.3.4".into(), true)
        );
        // All trusted: the leftmost.
        assert_eq!(
            client(&chain, "10.0.0.1", &["10.9.9.9"]),
            ("10.9.9.9".into(), true)
        );
        // No header: the proxy itself.
        assert_eq!(client(&chain, "10.0.0.1", &[]), ("10.0.0.1".into(), true));
        // Garbage stops the walk at the last address believed.
        assert_eq!(
            client(&chain, "10.0.0.1", &["1.2.3.4, unknown, 10.0.0.2"]),
            ("10.0.0.2".into(), true)
        );
        // IPv6, and an IPv4-mapped peer.
        assert_eq!(
            client(
                &["::1/128", "127.0.0.1"],
                "::ffff:127.0.0.1",
                &["2001:db8::1"]
            ),
            ("2001:db8::1".into(), true)
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let e = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(TrustedProxies::parse(&["::1".into(), "fd00::/8".into()]).is_ok());
    }
}
