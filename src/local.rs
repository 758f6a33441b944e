//! The local identity source (`--source local`): for running outside Rancher.
//!
//! The IP is `--ip`, else the address of the interface that holds the default route (read from
//! the kernel's routing table in /proc, so no packet is sent and no DNS is asked), else the first
//! address that is not loopback or link-local. The service is `--service`, else the host name.

use std::fs;
use std::net::IpAddr;

use anyhow::anyhow;
use nix::ifaddrs::getifaddrs;

use crate::cli::check_name;
use crate::env::Identity;
use crate::exit::{Exit, Fail, OrExit};

pub fn identity(ip: Option<IpAddr>, service: Option<&str>) -> Result<Identity, Fail> {
    let ip = match ip {
        Some(ip) if ip.is_unspecified() => return Err(crate::fail!(Exit::Usage, "--ip {ip} is unspecified")),
        Some(ip) => ip,
        None => detect_ip()?,
    };
    let service = match service {
        Some(service) => service.to_string(),
        None => {
            let host = nix::unistd::gethostname().or_exit(Exit::Config)?;
            let host = host.to_string_lossy().into_owned();
            check_name(&host)
                .map_err(|e| Fail::new(Exit::Config, e.context("host name as service name; set --service")))?;
            host
        }
    };
    Ok(Identity { ip, service, stack: None, container: None })
}

/// The default-route interface's address, else the first usable one.
fn detect_ip() -> Result<IpAddr, Fail> {
    let addresses: Vec<(String, IpAddr)> = getifaddrs()
        .or_exit(Exit::Config)?
        .filter_map(|ifa| {
            let address = ifa.address?;
            let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => return None,
            };
            Some((ifa.interface_name, ip))
        })
        .filter(|(_, ip)| usable(*ip))
        .collect();

    let routes = [
        (fs::read_to_string("/proc/net/route").ok().and_then(|t| default_route_v4(&t)), true),
        (fs::read_to_string("/proc/net/ipv6_route").ok().and_then(|t| default_route_v6(&t)), false),
    ];
    for (iface, v4) in routes {
        let Some(iface) = iface else { continue };
        if let Some((_, ip)) = addresses.iter().find(|(name, ip)| *name == iface && ip.is_ipv4() == v4) {
            log::debug!("default route is on {iface}: {ip}");
            return Ok(*ip);
        }
    }
    addresses.first().map(|(_, ip)| *ip).ok_or_else(|| {
        Fail::new(Exit::Config, anyhow!("no network address other than loopback or link-local; set --ip"))
    })
}

fn usable(ip: IpAddr) -> bool {
    crate::metadata::reachable(ip)
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
    fn explicit_values_are_used_as_given() {
        let id = identity(Some("10.1.2.3".parse().unwrap()), Some("web")).unwrap();
        assert_eq!((id.ip.to_string().as_str(), id.service.as_str()), ("10.1.2.3", "web"));
        assert!(identity(Some("0.0.0.0".parse().unwrap()), Some("web")).is_err());
    }

    #[test]
    fn usable_addresses() {
        assert!(usable("10.0.0.1".parse().unwrap()) && usable("fd00::1".parse().unwrap()));
        assert!(!usable("127.0.0.1".parse().unwrap()) && !usable("fe80::1".parse().unwrap()));
        assert!(!usable("169.254.3.3".parse().unwrap()));
    }
}
