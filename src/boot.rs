//! The boot, as a numbered script: read local inputs, learn the identity, find peers, build the
//! environment, render the templates, then hand over to the program.
//!
//! Local inputs (the cookie file, or a mix release's need of one; the template sources; the
//! `--user` to run as) are read first, so that a configuration mistake fails at once instead of
//! after a minute of waiting for metadata. Nothing is written until every template of the run
//! has rendered without error. With `--user`, what is written (templates, the runtime dir, the
//! state file, the TLS options file, `~/.erlang.cookie`) is that user's, and the drop to it is the
//! last step before the hand-over: after it rancher-boot can read and write nothing that needed root.

use std::ffi::OsString;
use std::fs::{self, DirBuilder};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Instant;

use anyhow::anyhow;

use crate::cli::{Action, Config, Dist, NameBy, PeerMode, PeersFormat, TemplateSpec};
use crate::discovery::{self, PeerQuery};
use crate::dist_flags::{self, DistFlags};
use crate::env::{self, Extras};
use crate::exec;
use crate::exit::{Exit, Fail};
use crate::source::{self, Context, Identity};
use crate::template::{self, Kind};
use crate::{cookie, init, state, user};

#[allow(clippy::needless_pass_by_value)] // the config is this run's, and ends with it
pub fn run(config: Config, started: Instant) -> Result<Exit, Fail> {
    let ctx = Context::new(&config, started);
    let deadline = ctx.deadline;

    // 1. Local inputs: fail fast on a bad cookie file or a missing template.
    let cookie = config.cookie_file.as_deref().map(cookie::read_cookie).transpose()?;
    if let (None, Action::Run { program, .. }) = (&cookie, &config.action) {
        cookie::check_mix_release_cookie(Path::new(program), std::env::var_os("RELEASE_COOKIE").as_deref())?;
    }
    let sources = read_templates(&config.templates)?;
    let target = config.user.as_deref().map(user::resolve).transpose()?;
    let owner = target.as_ref().map(|t| (t.uid.as_raw(), t.gid.as_raw()));
    // Only a run writes it: print-env and peers beside a node have nothing to write.
    let runs = matches!(config.action, Action::Run { .. });
    let home_cookie = if config.cookie_home && runs { Some(cookie_for_home(cookie.as_deref())?) } else { None };
    lint_cookie(cookie.as_deref(), config.cookie_file.as_deref())?;
    let (erl_aflags, erl_flags, erl_zflags) =
        (std::env::var_os("ERL_AFLAGS"), std::env::var_os("ERL_FLAGS"), std::env::var_os("ERL_ZFLAGS"));
    let text = |v: &Option<std::ffi::OsString>| v.as_ref().and_then(|v| v.to_str().map(str::to_string));
    dist_flags::check_inherited(
        config.dist == Dist::Tls,
        &[text(&erl_aflags).as_deref(), text(&erl_flags).as_deref(), text(&erl_zflags).as_deref()],
    )?;
    let optfile = config.runtime_dir.join(dist_flags::OPTFILE);
    if let Some(dir) = &config.tls_dir {
        dist_flags::check_tls_dir(dir)?;
        dist_flags::travels(&optfile, "--runtime-dir")?;
        if let Action::Run { program, .. } = &config.action {
            dist_flags::check_release_has_ssl(Path::new(program))?;
        }
    }
    // 1b. The mesh keeper speaks to the VM, and cannot without its cookie.
    if config.mesh.is_some() && config.dist == Dist::Tls {
        return Err(crate::fail!(
            Exit::Config,
            "cannot keep the mesh of a --dist tls node: --mesh speaks Erlang distribution to the VM, and \
             rancher-boot has no TLS client; drop one of them (a TLS cluster keeps its connections with sync_nodes or the app's own poller)"
        ));
    }
    let mesh_cookie = match (&config.mesh, &config.action, &cookie) {
        (Some(_), Action::Run { .. }, Some(cookie)) => Some(cookie.clone()),
        (Some(_), Action::Run { program, .. }, None) => Some(mesh_cookie(Path::new(program))?),
        _ => None,
    };

    // 2. Who are we? The source --source names, or the one detected; the overrides applied.
    //    (This is where a boot waits for metadata or for Docker's DNS.) A command run later in
    //    the container (print-env, peers, remote_console) takes what the boot chose, if it runs.
    let boots = is_boot(&config.action);
    let remembered = if boots { None } else { state::load_live(&config.runtime_dir) };
    let identity = match &remembered {
        // What is given on this command line still wins (--peer-query, --service, --ip).
        Some(state) => source::apply_overrides(state.identity.clone(), &ctx)?,
        None => source::identify(&ctx)?,
    };

    // 3. Who else is there?
    let peers = discovery::discover(&PeerQuery {
        mode: config.peers,
        name: identity.peer_query.as_deref(),
        platform: identity.platform,
        dns_server: config.dns_server,
        wait: config.wait_peers,
        metadata_url: &config.metadata_url,
        self_ip: identity.ip,
        started,
        deadline,
    })?;

    // 3b. With --name-by hostname, the peers by their host names too (SRV, else PTR).
    let name_host = identity.host_name.as_deref().filter(|_| config.name_by == NameBy::Hostname);
    let (peers, peer_hosts): (Vec<IpAddr>, Option<Vec<String>>) = match name_host {
        Some(own) => {
            let named = discovery::hostnames::name_peers(
                own,
                identity.peer_query.as_deref(),
                &peers,
                identity.ip,
                config.dns_server,
                deadline,
            );
            let (ips, hosts) = named.into_iter().unzip();
            (ips, Some(hosts))
        }
        None => (peers, None),
    };

    // 4. The environment the program gets.
    let extras = Extras {
        peers: &peers,
        vm_args: config.vm_args_dest.as_deref(),
        cookie: cookie.as_deref(),
        erl_aflags: erl_aflags.as_deref(),
        erl_flags: erl_flags.as_deref(),
        erl_zflags: erl_zflags.as_deref(),
        peer_hosts: peer_hosts.as_deref(),
        name_host,
        dns_cluster_query: source::exported_query(&identity, &ctx),
        dist: DistFlags {
            tls_optfile: config.tls_dir.as_ref().map(|_| optfile.as_path()),
            port: config.dist_port,
            beside: !boots,
        },
        mesh: config.mesh,
    };
    let exports = env::exports(&identity, &config.node_basename, &extras);
    let mut summary = summary(&identity, &exports["NODE_NAME"], peers.len());
    if let Some(interval) = config.mesh {
        summary += &format!(", mesh keeper on (every {interval:?})");
    }
    if remembered.is_some() {
        summary += &format!(" (as the boot chose it: {})", config.runtime_dir.join(state::FILE_NAME).display());
    }
    let inherited_node = std::env::var("RELEASE_NODE").ok();
    if let Some(warning) = crate::erl::release_node_warning(inherited_node.as_deref(), &exports["RELEASE_NODE"]) {
        log::warn!("{warning}");
    }

    match config.action {
        Action::PrintEnv { format, show_secrets } => {
            log::info!("{summary}");
            print(&env::format_exports(&exports, format, show_secrets))?;
            return Ok(Exit::Ok);
        }
        Action::Peers { format } => {
            log::info!("{summary}");
            print(&format_peers(&peers, &exports["PEER_NODES"], format))?;
            return Ok(Exit::Ok);
        }
        Action::Run { .. } => {}
    }
    let mut child_env = env::child_env(std::env::vars_os(), &exports);
    if let Some(target) = &target {
        child_env.insert("HOME".into(), target.home.clone().into_os_string());
    }
    let keeper = match (config.mesh, mesh_cookie) {
        (Some(interval), Some(cookie)) => {
            Some(keeper(&config, &identity, &exports["NODE_NAME"], name_host, cookie, interval)?)
        }
        _ => None,
    };

    // 5. Render every template, then write them (or show them, with --dry-run).
    let rendered = render_templates(&config.templates, &sources, &child_env)?;
    let node = &exports["NODE_NAME"];
    for (spec, text) in config.templates.iter().zip(&rendered) {
        if spec.vm_args {
            template::vm_args_warnings(text, node).iter().for_each(|w| log::warn!("{}: {w}", spec.dest.display()));
            if let Some(cookie) = template::vm_args_cookie(text) {
                for warning in cookie::lint(&cookie, &format!("{} (-setcookie)", spec.dest.display()), None)? {
                    log::warn!("{warning}");
                }
            }
        }
    }
    // Written by every run that hands the flags over: a passthrough beside the node (remote, rpc)
    // may run with a runtime dir of its own.
    let tls_options = config.tls_dir.as_deref().map(dist_flags::optfile);
    if config.dry_run {
        log::info!("{summary}");
        let mut out = String::new();
        for (spec, text) in config.templates.iter().zip(&rendered) {
            let mut text = String::from_utf8_lossy(text).into_owned();
            if let Some(cookie) = &cookie {
                // Rendered files may hold the cookie (-setcookie ${RELEASE_COOKIE}); stdout is no place for it.
                text = text.replace(cookie.as_str(), "<redacted>");
            }
            out += &format!("# {} (rendered from {})\n{text}", spec.dest.display(), spec.src.display());
            if !text.ends_with('\n') && !text.is_empty() {
                out.push('\n');
            }
        }
        if let Some(text) = &tls_options {
            out += &format!("# {} (--dist tls)\n{text}", optfile.display());
        }
        out += "# exports (with the inherited environment)\n";
        out += &env::format_exports(&exports, crate::cli::EnvFormat::Shell, false);
        if let Some(target) = &target {
            out += &format!("# as {}, HOME={}\n", target.describe(), target.home.display());
        }
        if let Some(path) = cookie_home_path(target.as_ref()).filter(|_| home_cookie.is_some()) {
            out += &format!("# the cookie also goes to {} (0400)\n", path.display());
        }
        if let Action::Run { program, args, .. } = &config.action {
            out += &format!("exec {}\n", exec::shell_command(program, args));
        }
        print(&out)?;
        return Ok(Exit::Ok);
    }
    write_templates(&config, &rendered, owner)?;
    if let Some(text) = tls_options.as_ref().filter(|text| fs::read_to_string(&optfile).ok().as_ref() != Some(text)) {
        create_runtime_dir(&config, owner)?;
        template::write_atomic_as(&optfile, text.as_bytes(), 0o600, owner)
            .map_err(|e| Fail::new(Exit::CantCreate, e))?;
    }
    if let Some(cookie) = &home_cookie {
        write_home_cookie(cookie, target.as_ref())?;
    }

    // 6. Hand over: from here on the program's own exit code is what counts.
    let Action::Run { program, args, .. } = &config.action else { unreachable!("handled above") };
    if boots {
        remember(&config, program, identity.clone(), &exports, name_host, owner);
    }
    let as_user = target.as_ref().map(|t| format!(" as {}", t.describe())).unwrap_or_default();
    // `exec` replaces rancher-boot; with --init it stays PID 1 and the program is its child.
    let verb = if config.init { "run as PID 1's child" } else { "exec" };
    log::info!("{summary}; {verb} {}{as_user}", exec::shell_command(program, args));
    // With --init too the drop comes first, in PID 1 itself: nothing stays root. A child that
    // cannot change user (no setuid program) takes signals from a PID 1 of its own uid, and
    // reaping needs no privilege.
    if let Some(target) = &target {
        user::drop_to(target)?;
    }
    if config.init {
        return init::run(program, args, &child_env, keeper);
    }
    Err(exec::exec(program, args, &child_env))
}

/// The cookie `--cookie-home` writes: the one given (`--cookie-file`), else `RELEASE_COOKIE`.
fn cookie_for_home(given: Option<&str>) -> Result<String, Fail> {
    if let Some(cookie) = given {
        return Ok(cookie.to_string());
    }
    match std::env::var_os("RELEASE_COOKIE") {
        Some(value) => cookie::check_cookie(value.as_encoded_bytes())
            .map_err(|why| Fail::new(Exit::Config, anyhow!("cannot use RELEASE_COOKIE for --cookie-home: {why}"))),
        None => Err(Fail::new(
            Exit::Config,
            anyhow!(
                "cannot write --cookie-home (RANCHER_BOOT_COOKIE_HOME): there is no cookie to write; give \
                 --cookie-file (RANCHER_BOOT_COOKIE_FILE) or set RELEASE_COOKIE"
            ),
        )),
    }
}

/// `$HOME/.erlang.cookie` of the `--user` (its passwd entry's home), else of this process.
fn cookie_home_path(target: Option<&user::Target>) -> Option<std::path::PathBuf> {
    let home = match target {
        Some(target) => Some(target.home.clone()),
        None => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(std::path::PathBuf::from),
    };
    home.map(|home| home.join(".erlang.cookie"))
}

/// Writes the cookie where Erlang looks, atomically, 0400, the user's. Errors name the path and
/// never the cookie.
fn write_home_cookie(cookie: &str, target: Option<&user::Target>) -> Result<(), Fail> {
    let Some(path) = cookie_home_path(target) else {
        return Err(Fail::new(
            Exit::Config,
            anyhow!("cannot write --cookie-home: HOME is not set, and no --user gives one"),
        ));
    };
    let owner = target.map(|t| (t.uid.as_raw(), t.gid.as_raw()));
    template::write_atomic_as(&path, cookie.as_bytes(), 0o400, owner).map_err(|e| Fail::new(Exit::CantCreate, e))?;
    log::debug!("wrote the cookie to {}", path.display());
    Ok(())
}

/// Creates the runtime dir (0700) if need be and, with `--user`, gives it to that user.
fn make_runtime_dir(dir: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// The cookie lint (cookie.rs) on the cookie the node gets: the cookie file's, else an inherited
/// `RELEASE_COOKIE`; warnings are logged, a published cookie ends the boot (78).
fn lint_cookie(cookie: Option<&str>, file: Option<&Path>) -> Result<(), Fail> {
    let inherited = std::env::var("RELEASE_COOKIE").ok().filter(|c| !c.is_empty());
    let (cookie, source) = match (cookie, &inherited, file) {
        (Some(cookie), _, Some(path)) => (cookie, format!("{}", path.display())),
        (Some(cookie), _, None) => (cookie, "vm.args (-setcookie)".to_string()),
        (None, Some(cookie), _) => (cookie.as_str(), "RELEASE_COOKIE".to_string()),
        (None, None, _) => return Ok(()),
    };
    for warning in cookie::lint(cookie, &source, file)? {
        log::warn!("{warning}");
    }
    Ok(())
}

/// The cookie of the VM that `--mesh` speaks to, when no `--cookie-file` gives it: as the release
/// will find it (RELEASE_COOKIE, a mix release's releases/COOKIE, $HOME/.erlang.cookie). None is
/// a 78 before the exec: the keeper could never connect.
fn mesh_cookie(program: &Path) -> Result<String, Fail> {
    match cookie::find_beyond_files(release_cookie(program).as_deref())? {
        Ok((cookie, from)) => {
            log::debug!("mesh: the cookie comes from {from}");
            Ok(cookie)
        }
        Err(home) => Err(crate::fail!(
            Exit::Config,
            "cannot keep the mesh without a cookie: the keeper connects to the VM with it; give --cookie-file \
             (RANCHER_BOOT_COOKIE_FILE), set RELEASE_COOKIE, or put it in {}",
            home.display()
        )),
    }
}

/// The keeper's plan: its own VM, and the boot's peer query (a 78 when there is none).
fn keeper(
    config: &Config,
    identity: &Identity,
    node: &str,
    name_host: Option<&str>,
    cookie: String,
    interval: std::time::Duration,
) -> Result<crate::mesh::Keeper, Fail> {
    let query = match (config.peers, identity.peer_query.as_deref()) {
        (PeerMode::Metadata, query) => query.unwrap_or("self/service").to_string(),
        (_, Some(query)) => query.to_string(),
        (_, None) => {
            return Err(crate::fail!(
                Exit::Config,
                "cannot keep the mesh without a peer query: --mesh looks the peers up every interval, and the \
                 {} source names none; set --peer-query (RANCHER_BOOT_PEER_QUERY)",
                identity.platform
            ));
        }
    };
    let node = crate::dist::NodeName::parse(node)
        .map_err(|why| crate::fail!(Exit::Config, "cannot keep the mesh of {node}: {why}"))?;
    Ok(crate::mesh::Keeper {
        target: crate::mesh::Target {
            node,
            ip: identity.ip,
            // --mesh with --dist tls is refused above: the keeper speaks plain distribution.
            reach: crate::dist::Reach {
                tls: false,
                dist_port: config.dist_port,
                epmd_port: crate::dist::epmd::configured_port(),
            },
        },
        cookie,
        interval,
        peers: crate::mesh::Peers {
            mode: config.peers,
            query,
            dns_server: config.dns_server,
            metadata_url: config.metadata_url.clone(),
            self_ip: identity.ip,
            basename: config.node_basename.clone(),
            name_host: name_host.map(str::to_string),
        },
    })
}

/// A mix release's `releases/COOKIE`, next to `bin/` of `program`, when the file is there.
fn release_cookie(program: &Path) -> Option<std::path::PathBuf> {
    crate::erl::release_root(program).map(|root| root.join("releases/COOKIE")).filter(|path| path.is_file())
}

/// The release's commands that start the node: a passthrough with one of them (or none) is the
/// container's boot, like the `--` form. Any other (`remote_console`, `rpc`, `pid`, ...) is a
/// command run beside a node that is already up.
const START_COMMANDS: [&str; 7] =
    ["start", "foreground", "console", "console_clean", "start_iex", "daemon", "daemon_iex"];

/// Does this run start the node (and so choose and remember the identity)? The `--` form, PID 1,
/// or a passthrough of a start command.
fn is_boot(action: &Action) -> bool {
    match action {
        Action::Run { passthrough: false, .. } => true,
        Action::Run { args, .. } => {
            std::process::id() == 1 || args.first().is_none_or(|word| START_COMMANDS.iter().any(|c| word == *c))
        }
        Action::PrintEnv { .. } | Action::Peers { .. } => false,
    }
}

/// Writes the state file for the commands that come later (`probe`, `print-env`, passthrough).
/// A boot does not fail for it: a read-only runtime dir costs only the later commands' shortcut.
fn remember(
    config: &Config,
    program: &std::ffi::OsStr,
    identity: Identity,
    exports: &env::Exports,
    name_host: Option<&str>,
    owner: Option<(u32, u32)>,
) {
    let release_cookie = release_cookie(Path::new(program));
    let cookie = match (&config.cookie_file, std::env::var_os("RELEASE_COOKIE"), release_cookie) {
        (Some(path), _, _) => state::CookieSource::File(path.clone()),
        (None, Some(_), _) => state::CookieSource::Environment,
        (None, None, Some(path)) => state::CookieSource::Release(path),
        (None, None, None) => state::CookieSource::Home,
    };
    let state = state::State {
        pid: 0,
        start_time: 0,
        identity,
        node: exports["NODE_NAME"].clone(),
        name_host: name_host.map(str::to_string),
        erl_aflags: exports.get("ERL_AFLAGS").cloned(),
        tls: config.dist == Dist::Tls,
        dist_port: config.dist_port,
        cookie,
    };
    let saved = make_runtime_dir(&config.runtime_dir, owner)
        .map_err(anyhow::Error::from)
        .and_then(|()| state::save(&config.runtime_dir, state, owner));
    if let Err(e) = saved {
        log::warn!(
            "cannot write the state file in {}: {e:#}; probe and print-env will derive the identity",
            config.runtime_dir.display()
        );
    }
}

/// `node hello@10.0.1.4 (swarm: 10.0.1.4 on eth1 is hello.2.x.appnet), service hello, 2 peers`:
/// who the node is, which platform said so, and why.
fn summary(identity: &Identity, node: &str, peers: usize) -> String {
    format!(
        "node {node} ({}: {}), service {}, {peers} peer{}",
        identity.platform,
        identity.evidence,
        identity.service,
        if peers == 1 { "" } else { "s" }
    )
}

fn print(text: &str) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Fail::new(Exit::CantCreate, anyhow!("cannot write to stdout: {e}")))
}

/// The peers with their node names (`PEER_NODES`, in the same order: by IP or by host name).
fn format_peers(peers: &[IpAddr], nodes: &str, format: PeersFormat) -> String {
    let pairs = peers.iter().zip(nodes.split_whitespace());
    match format {
        PeersFormat::Plain => pairs.map(|(_, node)| format!("{node}\n")).collect(),
        PeersFormat::Json => {
            let list: Vec<serde_json::Value> =
                pairs.map(|(ip, node)| serde_json::json!({ "ip": crate::erl::ntoa(*ip), "node": node })).collect();
            format!("{}\n", serde_json::Value::Array(list))
        }
    }
}

fn read_templates(specs: &[TemplateSpec]) -> Result<Vec<Vec<u8>>, Fail> {
    specs
        .iter()
        .map(|spec| {
            fs::read(&spec.src).map_err(|e| {
                Fail::new(
                    Exit::NoInput,
                    anyhow!("cannot read template {}: {}", spec.src.display(), exec::describe_io_error(&e)),
                )
            })
        })
        .collect()
}

/// Renders all templates; every error of every file is logged, then one error ends the boot.
fn render_templates(
    specs: &[TemplateSpec],
    sources: &[Vec<u8>],
    vars: &std::collections::BTreeMap<OsString, OsString>,
) -> Result<Vec<Vec<u8>>, Fail> {
    let mut rendered = Vec::new();
    let mut failed = Vec::new();
    for (spec, source) in specs.iter().zip(sources) {
        let kind = if spec.vm_args { Kind::VmArgs } else { Kind::Plain };
        match template::render(source, kind, vars) {
            Ok(text) => rendered.push(text),
            Err(errors) => {
                for error in &errors {
                    log::error!("cannot render {}: {error}", spec.src.display());
                }
                failed.push(format!(
                    "{} ({} error{})",
                    spec.src.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ));
            }
        }
    }
    if !failed.is_empty() {
        return Err(Fail::new(Exit::Config, anyhow!("cannot render {}; nothing was written", failed.join(", "))));
    }
    Ok(rendered)
}

fn create_runtime_dir(config: &Config, owner: Option<(u32, u32)>) -> Result<(), Fail> {
    make_runtime_dir(&config.runtime_dir, owner).map_err(|e| {
        Fail::new(
            Exit::CantCreate,
            anyhow!(
                "cannot create runtime directory {}: {}",
                config.runtime_dir.display(),
                exec::describe_io_error(&e)
            ),
        )
    })
}

fn write_templates(config: &Config, rendered: &[Vec<u8>], owner: Option<(u32, u32)>) -> Result<(), Fail> {
    if config.templates.iter().any(|spec| spec.dest.starts_with(&config.runtime_dir)) {
        create_runtime_dir(config, owner)?;
    }
    for (spec, text) in config.templates.iter().zip(rendered) {
        // write_atomic's error names the path and the step that failed.
        template::write_atomic_as(&spec.dest, text, 0o600, owner).map_err(|e| Fail::new(Exit::CantCreate, e))?;
        log::debug!("rendered {} to {}", spec.src.display(), spec.dest.display());
    }
    Ok(())
}
