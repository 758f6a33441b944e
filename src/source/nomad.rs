//! The Nomad source: `NOMAD_ALLOC_ID` says it is one. The address is in the per-port variables,
//! whose label is the user's: `NOMAD_ALLOC_IP_<label>` (the allocation's own, in bridge/CNI mode)
//! preferred, else `NOMAD_IP_<label>` (the host's). Several different addresses without `--ip`
//! are a 78 listing them. Service = `NOMAD_GROUP_NAME` (the unit that scales). Peers come only
//! from `--peer-query` (Consul's `<service>.service.consul`): this source names no query.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::anyhow;

use super::{Context, Identity, Platform};
use crate::cli::check_name;
use crate::exit::{Exit, Fail};

/// Step 3 of `--source auto`: `NOMAD_ALLOC_ID` set.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    ctx.var("NOMAD_ALLOC_ID").map(|id| format!("NOMAD_ALLOC_ID is {id}"))
}

/// IP from the port variables (unless `--ip`), service `NOMAD_GROUP_NAME`, no peer query.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let (ip, evidence) = match ctx.config.ip {
        Some(ip) => (ip, "--ip given".to_string()),
        None => {
            // The labels are the user's: every variable of the environment is looked at.
            let vars: Vec<(String, String)> = (ctx.env_names)()
                .into_iter()
                .filter_map(|name| name.into_string().ok())
                .filter(|name| name.starts_with("NOMAD_"))
                .filter_map(|name| ctx.var(&name).map(|value| (name, value)))
                .collect();
            address(vars.iter().map(|(n, v)| (n.as_str(), v.as_str())))?
        }
    };
    let (service, from) = match (ctx.var("NOMAD_GROUP_NAME"), &ctx.config.service) {
        (Some(group), _) => (group, "NOMAD_GROUP_NAME"),
        (None, Some(service)) => (service.clone(), "--service"),
        (None, None) => {
            return Err(Fail::new(
                Exit::Config,
                anyhow!("cannot name the service: NOMAD_GROUP_NAME is not set; set --service"),
            ));
        }
    };
    check_name(&service).map_err(|e| {
        Fail::new(Exit::Config, e.context(format!("cannot use {from} as the service name (set --service)")))
    })?;
    let alloc = ctx.var("NOMAD_ALLOC_INDEX").map(|i| format!(", alloc index {i}")).unwrap_or_default();
    Ok(Identity {
        platform: Platform::Nomad,
        ip,
        service,
        peer_query: None,
        host_name: None,
        extras: Vec::new(),
        evidence: format!("{evidence}, service from {from}{alloc}"),
    })
}

/// The allocation's address from its variables, and the evidence (the variables that named it).
pub fn address<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(IpAddr, String), Fail> {
    let mut alloc: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    let mut host: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for (name, value) in vars {
        let table = if name.strip_prefix("NOMAD_ALLOC_IP_").is_some_and(|l| !l.is_empty()) {
            &mut alloc
        } else if name.strip_prefix("NOMAD_IP_").is_some_and(|l| !l.is_empty()) {
            &mut host
        } else {
            continue;
        };
        match value.trim().parse::<IpAddr>() {
            Ok(ip) => table.entry(ip).or_default().push(name),
            Err(_) => log::debug!("nomad: {name}={value:?} is not an address; ignored"),
        }
    }
    let (table, kind) = if alloc.is_empty() { (host, "NOMAD_IP_<label>") } else { (alloc, "NOMAD_ALLOC_IP_<label>") };
    match table.len() {
        0 => Err(Fail::new(
            Exit::Config,
            anyhow!(
                "cannot find the node's address: no NOMAD_ALLOC_IP_<label> or NOMAD_IP_<label> variable holds one (declare a port in the \
                 group's network block), or give the address with --ip"
            ),
        )),
        1 => {
            let (ip, mut names) = table.into_iter().next().expect("one entry");
            names.sort_unstable();
            Ok((ip, names.join(", ")))
        }
        _ => {
            let listed: Vec<String> = table
                .iter()
                .map(|(ip, names)| {
                    let mut names = names.clone();
                    names.sort_unstable();
                    format!("{ip} ({})", names.join(", "))
                })
                .collect();
            Err(Fail::new(
                Exit::Config,
                anyhow!(
                    "cannot choose the node's address: the {kind} variables hold different ones: {}; choose one with --ip",
                    listed.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(vars: &[(&str, &str)]) -> String {
        address(vars.iter().copied())
            .map(|(ip, why)| format!("{ip} {why}"))
            .unwrap_or_else(|f| format!("{} {:#}", f.exit.code(), f.error))
    }

    #[test]
    fn the_alloc_address_is_preferred_to_the_host_one() {
        let vars = [
            ("NOMAD_ALLOC_ID", "5b1e9b3c-5d3a-4a71-9d6b-1d2c3e4f5a6b"),
            ("NOMAD_IP_epmd", "192.168.1.20"),
            ("NOMAD_ALLOC_IP_epmd", "172.26.64.5"),
            ("NOMAD_ALLOC_IP_dist", "172.26.64.5"),
        ];
        assert_eq!(ip(&vars), "172.26.64.5 NOMAD_ALLOC_IP_dist, NOMAD_ALLOC_IP_epmd");
    }

    #[test]
    fn the_host_address_serves_without_alloc_ones() {
        assert_eq!(
            ip(&[("NOMAD_IP_http", "192.168.1.20"), ("NOMAD_HOST_IP_http", "10.9.9.9")]),
            "192.168.1.20 NOMAD_IP_http"
        );
    }

    #[test]
    fn two_labels_of_different_addresses_are_listed() {
        let text = ip(&[("NOMAD_ALLOC_IP_dist", "172.26.64.5"), ("NOMAD_ALLOC_IP_admin", "10.0.0.9")]);
        assert!(text.starts_with("78 "), "{text}");
        assert!(
            text.contains("10.0.0.9 (NOMAD_ALLOC_IP_admin)") && text.contains("172.26.64.5 (NOMAD_ALLOC_IP_dist)"),
            "{text}"
        );
        assert!(text.contains("--ip"), "{text}");
    }

    #[test]
    fn no_port_variable_is_a_78_naming_ip() {
        let text = ip(&[("NOMAD_ALLOC_ID", "x"), ("NOMAD_IP_", "10.0.0.1"), ("NOMAD_ALLOC_IP_x", "not-an-ip")]);
        assert!(text.starts_with("78 ") && text.contains("--ip"), "{text}");
    }
}
