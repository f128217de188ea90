//! The SSRF guard's policy: which addresses a destination may connect to.
//!
//! Private, loopback, link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, reserved
//! and unspecified addresses are refused, in IPv4, IPv6 and the IPv6 forms that embed an IPv4
//! address, unless an operator allows a network (`TOCSIN_ALLOW_DESTINATIONS`): on-premises SIEMs
//! live on private networks. The connector checks the address it actually connects to, so a name
//! that resolves differently later (DNS rebinding) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// `Err` carries why the address is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(&v6),
            IpAddr::V4(_) => None,
        };
        if let Some(v4) = embedded {
            if self.allow.iter().any(|net| net.contains(&IpAddr::V4(v4))) {
                return Ok(());
            }
        }
        let reason = match ip {
            IpAddr::V4(v4) => v4_reason(v4),
            IpAddr::V6(v6) => embedded.and_then(v4_reason).or_else(|| v6_reason(v6)),
        };
        match reason {
            None => Ok(()),
            Some(why) => Err(format!(
                "destination address {ip} is {why}; refused by the SSRF guard (allow it with TOCSIN_ALLOW_DESTINATIONS)"
            )),
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [0, ..] => "unspecified (0.0.0.0/8)",
        [127, ..] => "loopback",
        [10, ..] => "private (10.0.0.0/8)",
        [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [169, 254, ..] => "link-local (169.254.0.0/16, cloud metadata)",
        [100, b, ..] if (64..128).contains(&b) => "shared CGNAT space (100.64.0.0/10)",
        [192, 0, 0, _] => "reserved for protocol assignments (192.0.0.0/24)",
        [198, b, ..] if b == 18 || b == 19 => "reserved for benchmarking (198.18.0.0/15)",
        [a, ..] if (224..240).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved (240.0.0.0/4) or broadcast",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        Some("unspecified (::)")
    } else if ip.is_loopback() {
        Some("loopback (::1)")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("unique-local (fc00::/7)")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("site-local (fec0::/10)")
    } else if s[0] & 0xff00 == 0xff00 {
        Some("multicast")
    } else if s[..3] == [0x64, 0xff9b, 1] {
        // Where it embeds its IPv4 address depends on the network's prefix length.
        Some("local-use IPv4/IPv6 translation (64:ff9b:1::/48)")
    } else if s[..2] == [0x2001, 0] {
        // Its IPv4 addresses are obfuscated: it could reach anything.
        Some("Teredo tunnelling (2001::/32)")
    } else {
        None
    }
}

/// The IPv4 address inside IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d),
/// IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses.
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail(s[6], s[7]));
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return Some(tail(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(tail(s[1], s[2]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &AddressPolicy, ip: &str) -> bool {
        p.check(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn default_policy() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1:a9fe:a9:fe00::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(refused(&p, ip), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!refused(&p, ip), "{ip}");
        }
        assert!(p.check("169.254.169.254".parse().unwrap()).unwrap_err().contains("link-local"));
    }

    #[test]
    fn allow_list() {
        let p = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap(), "10.20.0.0/16".parse().unwrap()]);
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "::ffff:127.0.0.1"));
        assert!(!refused(&p, "10.20.3.4"));
        assert!(refused(&p, "10.21.0.1"));
        assert!(refused(&p, "169.254.169.254"));
    }
}
