//! `rancher-boot probe`: is the node healthy? A health check in a millisecond, with no second VM.
//!
//! The script, all of it within the probe's one deadline (`--timeout`, default 1 s):
//! 1. which node: `--node`, else the boot's state file, else derived as a boot would;
//! 2. its address: the state's, an address in the name, else the host name looked up;
//! 3. EPMD: the name's port (`--level epmd` ends here, with no cookie);
//! 4. the handshake, with the cookie (`connect`, the default level), as a hidden node;
//! 5. `erlang:node()` through `rex` (`rpc`), or `application:which_applications()` for `--app`.
//!
//! Nothing is printed when the node is healthy. When it is not, one line names the node, the
//! step and the reason in the words people search for, and the exit code is 1. The cookie is
//! never printed; a bad or missing one is a configuration error (78), like a node name that
//! cannot be known.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::cli::{Dist, Options, ProbeArgs, ProbeLevel};
use crate::dist::term::Term;
use crate::dist::{self, NodeName, epmd, handshake, rpc};
use crate::exit::{Exit, Fail};
use crate::{cookie, fail, state};

/// Runs the probe: `Ok(Exit::Ok)` when healthy; `Exit::Unhealthy` (with the reason) when not.
pub fn run(options: &Options, args: &ProbeArgs, started: Instant) -> Result<Exit, Fail> {
    let deadline = started + args.timeout;
    let level = if args.apps.is_empty() { args.level } else { ProbeLevel::Rpc };
    for app in &args.apps {
        crate::cli::check_node_basename(app)
            .map_err(|_| fail!(Exit::Usage, "cannot check --app {app:?}: it is not an application name"))?;
    }

    // 1. Which node.
    let (target, state) = match &args.node {
        Some(name) => {
            let target =
                NodeName::parse(name).map_err(|why| fail!(Exit::Usage, "cannot use --node {name:?}: {why}"))?;
            // The boot's state speaks for this node only.
            (target.clone(), state::load_live(&options.runtime_dir).filter(|s| s.node == target.to_string()))
        }
        None => {
            let this = state::this_node(options, deadline)?;
            (
                NodeName::parse(&this.node)
                    .map_err(|why| fail!(Exit::Config, "cannot probe node {}: {why}", this.node))?,
                this.state,
            )
        }
    };
    let unhealthy = |why: String| fail!(Exit::Unhealthy, "{target}: {why}");
    // How the node speaks: the boot's state when it speaks for this node, else the options.
    let reach = state::reach(state.as_ref(), options.dist == Dist::Tls, options.dist_port);
    let tls = reach.tls;
    if tls && level == ProbeLevel::Rpc {
        return Err(fail!(
            Exit::Config,
            "cannot check {target} at --level rpc or with --app: it speaks TLS distribution, and rancher-boot has \
             no TLS client; --level connect checks EPMD and TCP"
        ));
    }
    let cookie = if level > ProbeLevel::Epmd && !tls {
        let own = args.common.cookie_file.as_deref().or(options.cookie_file.as_deref());
        Some(cookie::find(own, state.as_ref())?.0)
    } else {
        None
    };

    // 2. Its address.
    let ip = match (&state, target.host.parse::<IpAddr>()) {
        (_, Ok(ip)) => ip,
        (Some(state), Err(_)) => state.identity.ip,
        (None, Err(_)) => resolve(&target.host, options, deadline).map_err(unhealthy)?,
    };

    // 3. EPMD, or with --dist-port the port itself.
    let port = registered_port(&target, ip, reach, deadline).map_err(unhealthy)?;
    let addr = SocketAddr::new(ip, port);
    if (reach.dist_port.is_some() && level == ProbeLevel::Epmd) || tls {
        // No EPMD to ask, or no TLS to speak: that the VM listens is what can be known.
        dist::connect_port(addr, deadline).map_err(|e| unhealthy(e.to_string()))?;
        let proven = if tls { "tls: epmd and tcp; the handshake was not attempted" } else { "no epmd: tcp" };
        return Ok(healthy(&target, proven, started));
    }
    let Some(cookie) = cookie else { return Ok(healthy(&target, "epmd", started)) };

    // 4. The handshake.
    let mut conn = handshake::connect(addr, &target, &cookie, deadline).map_err(|e| unhealthy(e.to_string()))?;
    if conn.peer != target.to_string() {
        return Err(unhealthy(format!("the node on {addr} is {}, not {target}", conn.peer)));
    }
    if level == ProbeLevel::Connect {
        return Ok(healthy(&target, "connect", started));
    }

    // 5. A call.
    if args.apps.is_empty() {
        let reply = rpc::call(&mut conn, "erlang", "node", vec![], deadline).map_err(|e| unhealthy(e.to_string()))?;
        if reply.as_atom() != Some(&target.to_string()) {
            return Err(unhealthy(format!("erlang:node() answered {reply}")));
        }
        return Ok(healthy(&target, "rpc", started));
    }
    let reply = rpc::call(&mut conn, "application", "which_applications", vec![], deadline)
        .map_err(|e| unhealthy(e.to_string()))?;
    let running =
        running_apps(&reply).ok_or_else(|| unhealthy(format!("application:which_applications() answered {reply}")))?;
    let missing: Vec<&str> =
        args.apps.iter().map(String::as_str).filter(|app| !running.iter().any(|r| r == app)).collect();
    if !missing.is_empty() {
        return Err(unhealthy(format!(
            "application{} {} not running (running: {})",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if running.is_empty() { "none".to_string() } else { running.join(", ") }
        )));
    }
    Ok(healthy(&target, &format!("rpc, {} running", args.apps.join(", ")), started))
}

/// The node's distribution port (`--dist-port`'s, else EPMD's); not registered is said with the
/// names that are.
fn registered_port(target: &NodeName, ip: IpAddr, reach: dist::Reach, deadline: Instant) -> Result<u16, String> {
    let epmd_port = reach.epmd_port;
    match reach.port(ip, &target.alive, deadline) {
        Ok(Some(port)) => {
            log::debug!("{}: port {port} (epmd on {ip}:{epmd_port}, or --dist-port)", target.alive);
            Ok(port)
        }
        Ok(None) => {
            let listed = epmd::names(ip, epmd_port, deadline)
                .map(|names| names.into_iter().map(|(name, _)| name).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let also = if listed.is_empty() { String::new() } else { format!(" (registered: {listed})") };
            Err(format!(
                "{} is {}{also}",
                target.alive,
                dist::Error::new(dist::Step::Epmd, SocketAddr::new(ip, epmd_port), dist::Failure::NotRegistered)
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `-v` says what was proven, and how long it took.
fn healthy(target: &NodeName, proven: &str, started: Instant) -> Exit {
    log::info!("{target} is healthy ({proven}) in {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    Exit::Ok
}

/// The names in `[{App, Description, Version}]`.
fn running_apps(reply: &Term) -> Option<Vec<String>> {
    reply
        .as_list()?
        .iter()
        .map(|app| match app {
            Term::Tuple(fields) => fields.first()?.as_atom().map(str::to_string),
            _ => None,
        })
        .collect()
}

fn resolve(host: &str, options: &Options, deadline: Instant) -> Result<IpAddr, String> {
    let found = crate::dns::host_addresses(host, options.dns_server, deadline).map_err(|miss| match miss {
        crate::dns::Miss::NoAddresses(why) => format!("cannot resolve {host}: {why}"),
        crate::dns::Miss::Failed(e) => format!("cannot resolve {host}: {e:#}"),
    })?;
    // Erlang's inet_tcp asks for IPv4: prefer it, as a node named by host would be reached.
    found.iter().find(|ip| ip.is_ipv4()).or(found.first()).copied().ok_or_else(|| format!("cannot resolve {host}"))
}
