//! The local source (`--source local`, and detection's last step): this machine as it is.
//!
//! The IP is `--ip`, else the address of the interface that holds the default route (read from
//! the kernel's routing table in /proc, so no packet is sent and no DNS is asked), else the first
//! address that is not loopback or link-local. The service is `--service`, else the host name;
//! the peer query is the service name. The local addresses, with their interface and prefix
//! length, are [`addresses`]: the Docker sources pick among them too. Which addresses other nodes
//! can reach at all is [`reachable`]'s to say, here because local addresses are its first use;
//! Rancher's `primary_ip` check asks it too. Left to others: the overrides (`super`) and any
//! address a platform names.

use std::fs;
use std::net::IpAddr;

use anyhow::anyhow;
use nix::ifaddrs::getifaddrs;

use super::{Context, Identity, Platform};
use crate::cli::check_name;
use crate::exit::{Exit, Fail};

/// This machine's identity (the overrides in `--ip` and `--service` are read here too: without
/// them the host is asked).
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let (ip, evidence) = match ctx.config.ip {
        Some(ip) => (ip, "--ip given".to_string()),
        None => detect_ip()?,
    };
    let service = match ctx.config.service.as_deref() {
        Some(service) => service.to_string(),
        None => {
            let host = nix::unistd::gethostname()
                .map_err(|e| crate::fail!(Exit::Config, "cannot read the host name: {}", e.desc()))?;
            let host = host.to_string_lossy().into_owned();
            check_name(&host).map_err(|e| {
                Fail::new(Exit::Config, e.context("cannot use the host name as the service name (set --service)"))
            })?;
            host
        }
    };
    Ok(Identity {
        platform: Platform::Local,
        ip,
        peer_query: Some(service.clone()),
        service,
        host_name: None,
        extras: Vec::new(),
        evidence,
    })
}

/// A local address: its interface and prefix length (a `/32` is a virtual IP, not a network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub interface: String,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// Every address of this machine that others could reach (not loopback, link-local, ...), in
/// the kernel's order.
pub fn addresses() -> Result<Vec<Address>, Fail> {
    Ok(getifaddrs()
        .map_err(|e| crate::fail!(Exit::Config, "cannot list the network interfaces: {}", e.desc()))?
        .filter_map(|ifa| {
            let address = ifa.address?;
            let (ip, prefix) = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                (Some(v4), _) => {
                    let mask = ifa
                        .netmask
                        .as_ref()
                        .and_then(|m| m.as_sockaddr_in())
                        .map_or(32, |m| m.ip().to_bits().count_ones());
                    (IpAddr::V4(v4.ip()), mask)
                }
                (_, Some(v6)) => {
                    let mask = ifa
                        .netmask
                        .as_ref()
                        .and_then(|m| m.as_sockaddr_in6())
                        .map_or(128, |m| m.ip().to_bits().count_ones());
                    (IpAddr::V6(v6.ip()), mask)
                }
                _ => return None,
            };
            Some(Address { interface: ifa.interface_name, ip, prefix: prefix as u8 })
        })
        .filter(|a| reachable(a.ip))
        .collect())
}

/// Whether `ip` lies in the network of `address` (its address and prefix length).
pub fn on_network(address: &Address, ip: IpAddr) -> bool {
    let (bits, width) = match (address.ip, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => ((a.to_bits() ^ b.to_bits()) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits() ^ b.to_bits(), 128),
        _ => return false,
    };
    let prefix = u32::from(address.prefix).min(width);
    prefix == 0 || bits >> (width - prefix) == 0
}

/// The default-route interface's address, else the first usable one, and why.
pub fn detect_ip() -> Result<(IpAddr, String), Fail> {
    let addresses = addresses()?;

    let routes = [
        (fs::read_to_string("/proc/net/route").ok().and_then(|t| default_route_v4(&t)), true),
        (fs::read_to_string("/proc/net/ipv6_route").ok().and_then(|t| default_route_v6(&t)), false),
    ];
    for (iface, v4) in routes {
        let Some(iface) = iface else { continue };
        if let Some(a) = addresses.iter().find(|a| a.interface == iface && a.ip.is_ipv4() == v4) {
            log::debug!("default route is on {iface}: {}", a.ip);
            return Ok((a.ip, format!("{} on {iface}, the default route", a.ip)));
        }
    }
    addresses.first().map(|a| (a.ip, format!("{} on {}, the first address", a.ip, a.interface))).ok_or_else(|| {
        Fail::new(
            Exit::Config,
            anyhow!("cannot find the node's address: none but loopback or link-local ones; set --ip"),
        )
    })
}

/// Whether other nodes can reach `ip`: not unspecified, loopback, link-local, multicast or
/// broadcast. An IPv4-mapped IPv6 address is judged as the IPv4 address it maps. The local
/// addresses are filtered by it, and so are the addresses Rancher's metadata names.
pub fn reachable(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let special = match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_multicast(),
    };
    !(ip.is_unspecified() || ip.is_loopback() || special)
}

/// The interface holding the IPv4 default route (docker_gwbridge's, in a Swarm task), if any.
pub fn default_route_interface() -> Option<String> {
    fs::read_to_string("/proc/net/route").ok().and_then(|t| default_route_v4(&t))
}

/// The interface of the lowest-metric IPv4 default route in /proc/net/route's format.
fn default_route_v4(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let default = f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000");
            if !default || flags & 0x1 == 0 {
                return None;
            }
            Some((f.get(6)?.parse::<u32>().ok()?, f[0].to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The interface of the lowest-metric IPv6 default route in /proc/net/ipv6_route's format.
fn default_route_v6(table: &str) -> Option<String> {
    const ZERO: &str = "00000000000000000000000000000000";
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            // RTF_UP set and RTF_REJECT (0x200) clear: the kernel's `lo` catch-all is a reject route.
            let default = f.first() == Some(&ZERO) && f.get(1) == Some(&"00");
            if !default || flags & 0x1 == 0 || flags & 0x200 != 0 || f.get(9)? == &"lo" {
                return None;
            }
            Some((u32::from_str_radix(f.get(5)?, 16).ok()?, f.get(9)?.to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wlan0\t00000000\t010200C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
";

    #[test]
    fn lowest_metric_default_route_wins() {
        assert_eq!(default_route_v4(ROUTE).as_deref(), Some("eth0"));
        assert_eq!(default_route_v4("Iface\tDestination\n").as_deref(), None);
    }

    #[test]
    fn ipv6_reject_route_on_lo_is_not_a_default_route() {
        let table = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
";
        assert_eq!(default_route_v6(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_v6(table.lines().next().unwrap()), None);
    }

    #[test]
    fn networks_by_prefix_length() {
        let a = |ip: &str, prefix| Address { interface: "eth1".into(), ip: ip.parse().unwrap(), prefix };
        let ip = |text: &str| text.parse().unwrap();
        assert!(on_network(&a("10.0.1.4", 24), ip("10.0.1.200")));
        assert!(!on_network(&a("10.0.1.4", 24), ip("10.0.2.1")));
        assert!(!on_network(&a("10.0.1.4", 32), ip("10.0.1.5")), "a /32 is no network");
        assert!(on_network(&a("fd00:1::4", 64), ip("fd00:1::ffff:1")));
        assert!(!on_network(&a("fd00:1::4", 64), ip("10.0.1.4")));
        assert!(on_network(&a("10.0.1.4", 0), ip("192.168.0.1")));
    }

    #[test]
    fn usable_addresses() {
        assert!(reachable("10.0.0.1".parse().unwrap()) && reachable("fd00::1".parse().unwrap()));
        assert!(!reachable("127.0.0.1".parse().unwrap()) && !reachable("fe80::1".parse().unwrap()));
        assert!(!reachable("169.254.3.3".parse().unwrap()));
    }
}
