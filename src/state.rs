//! What the boot chose, remembered in `RUNTIME_DIR/state.json` for the commands that run later
//! in the same container (`probe`, `print-env`, `peers`, passthrough such as `remote_console`),
//! so that they name the same node when metadata or DNS is gone, and cost no look-up.
//!
//! The file is one JSON object (format in docs/reference.md, "The state file"); it never holds the cookie,
//! only where the cookie comes from. It is written at the hand-over, atomically, and read only
//! while the boot's process lives: it records the boot's pid and that process's start time
//! (`/proc/PID/stat`), which stay the release's after the exec (or rancher-boot's own as PID 1
//! with `--init`). A state left by a container's earlier run, or by another boot on a laptop,
//! names a process that is gone and is passed over: the commands then derive the identity as a
//! boot would.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::cli::{Cli, Command, Config, EnvFormat, NameBy, Options};
use crate::exit::{Exit, Fail};
use crate::fail;
use crate::source::{Identity, Platform};

pub const FILE_NAME: &str = "state.json";
const VERSION: u64 = 1;

/// Where the cookie the boot handed over comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CookieSource {
    /// `--cookie-file`: the path, read again by whoever needs it.
    File(PathBuf),
    /// `RELEASE_COOKIE` in the environment the boot inherited.
    Environment,
    /// A mix release's own `releases/COOKIE`, which its start script reads.
    Release(PathBuf),
    /// None given: Erlang reads `$HOME/.erlang.cookie` (or makes one).
    Home,
}

/// The boot's choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub pid: i32,
    pub start_time: u64,
    pub identity: Identity,
    /// The node's full name, as exported in `NODE_NAME`.
    pub node: String,
    /// With `--name-by hostname`: the FQDN in the node name.
    pub name_host: Option<String>,
    /// The `ERL_AFLAGS` handed over (`-proto_dist inet6_tcp` on Fly), when any.
    pub erl_aflags: Option<String>,
    /// `--dist tls`: the node speaks TLS distribution.
    pub tls: bool,
    /// `--dist-port N`: no EPMD; the node listens on N.
    pub dist_port: Option<u16>,
    pub cookie: CookieSource,
}

impl State {
    /// The node name's part before the `@`.
    pub fn basename(&self) -> Option<String> {
        self.node.split_once('@').map(|(name, _)| name.to_string())
    }

    pub fn to_json(&self) -> String {
        let id = &self.identity;
        let (cookie, cookie_path) = match &self.cookie {
            CookieSource::File(path) => ("file", Some(path)),
            CookieSource::Environment => ("env", None),
            CookieSource::Release(path) => ("release", Some(path)),
            CookieSource::Home => ("home", None),
        };
        let long = self.node.split_once('@').is_some_and(|(_, host)| host.contains('.') || host.contains(':'));
        let value = json!({
            "version": VERSION,
            "pid": self.pid,
            "start_time": self.start_time,
            "node": self.node,
            "names": if long { "longnames" } else { "shortnames" },
            "name_host": self.name_host,
            "ip": crate::erl::ntoa(id.ip),
            "platform": id.platform.name(),
            "service": id.service,
            "peer_query": id.peer_query,
            "host_name": id.host_name,
            "evidence": id.evidence,
            "extras": id.extras.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "erl_aflags": self.erl_aflags,
            "dist": if self.tls { "tls" } else { "tcp" },
            "dist_port": self.dist_port,
            "cookie": cookie,
            "cookie_path": cookie_path.map(|p| p.display().to_string()),
        });
        format!("{value:#}\n")
    }

    pub fn from_json(text: &str) -> Result<State, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let str_of = |key: &str| v.get(key).and_then(Value::as_str).ok_or_else(|| format!("no {key:?}"));
        let opt = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        if v.get("version").and_then(Value::as_u64) != Some(VERSION) {
            return Err(format!("not version {VERSION}"));
        }
        let platform = platform_named(str_of("platform")?).ok_or("unknown platform")?;
        let ip: IpAddr = str_of("ip")?.parse().map_err(|_| "ip is not an address")?;
        let extras = v
            .get("extras")
            .and_then(Value::as_array)
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|pair| {
                        let name = EXTRAS.iter().find(|n| pair.get(0).and_then(Value::as_str) == Some(**n))?;
                        Some((*name, pair.get(1)?.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let path = || opt("cookie_path").map(PathBuf::from).ok_or("no cookie_path");
        let cookie = match str_of("cookie")? {
            "file" => CookieSource::File(path()?),
            "release" => CookieSource::Release(path()?),
            "env" => CookieSource::Environment,
            _ => CookieSource::Home,
        };
        Ok(State {
            pid: v.get("pid").and_then(Value::as_i64).and_then(|p| i32::try_from(p).ok()).ok_or("no pid")?,
            start_time: v.get("start_time").and_then(Value::as_u64).ok_or("no start_time")?,
            identity: Identity {
                platform,
                ip,
                service: str_of("service")?.to_string(),
                peer_query: opt("peer_query"),
                host_name: opt("host_name"),
                extras,
                evidence: str_of("evidence")?.to_string(),
            },
            node: str_of("node")?.to_string(),
            name_host: opt("name_host"),
            erl_aflags: opt("erl_aflags"),
            tls: opt("dist").as_deref() == Some("tls"),
            dist_port: v.get("dist_port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()),
            cookie,
        })
    }
}

/// The exports a source may add, by name (the state stores them as text).
const EXTRAS: [&str; 2] = ["STACK_NAME", "CONTAINER_NAME"];

fn platform_named(name: &str) -> Option<Platform> {
    use Platform::*;
    [Rancher, Kubernetes, Ecs, Nomad, Fly, Swarm, Compose, Local].into_iter().find(|p| p.name() == name)
}

/// The start time of process `pid` in clock ticks since boot (field 22 of its main thread's
/// `stat`). Read through `task/PID/`, not `/proc/PID/stat`: qemu-user answers a process's reads
/// of its own `/proc/PID/stat` with a stat of its making, whose start time is not the kernel's
/// that every other process reads (the aarch64 suite under emulation found it).
pub fn start_time(pid: i32) -> Option<u64> {
    use std::io::Read;
    // Read into room for the whole line (about 300 bytes; the name is at most 64): every boot
    // reads it, and read_to_string probes a size-0 /proc file in six growing reads.
    let mut file = std::fs::File::open(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    let (mut buf, mut len) = ([0; 1024], 0);
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) if len + n < buf.len() => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
    let stat = String::from_utf8_lossy(&buf[..len]);
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The state of the boot whose process still runs; `None` when there is none (no file, another
/// run's, unreadable), with the reason at `debug`.
pub fn load_live(runtime_dir: &Path) -> Option<State> {
    let path = runtime_dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).ok()?;
    match State::from_json(&text) {
        Ok(state) if start_time(state.pid) == Some(state.start_time) => {
            log::debug!("{}: the boot's choices (pid {})", path.display(), state.pid);
            Some(state)
        }
        Ok(state) => {
            log::debug!("{}: passed over: process {} is not the boot that wrote it", path.display(), state.pid);
            None
        }
        Err(why) => {
            log::debug!("{}: passed over: {why}", path.display());
            None
        }
    }
}

/// How this node is reached: as the boot's state says when there is one (it speaks for the node
/// that runs), else as the options say (`--dist tls`, `--dist-port`).
pub fn reach(state: Option<&State>, tls: bool, dist_port: Option<u16>) -> crate::dist::Reach {
    let (tls, dist_port) = state.map_or((tls, dist_port), |s| (s.tls, s.dist_port));
    crate::dist::Reach { tls, dist_port, epmd_port: crate::dist::epmd::configured_port() }
}

/// This container's node, for the commands that run beside it (`probe`, `doctor`).
#[derive(Debug)]
pub struct ThisNode {
    /// The checked options, as `print-env` would take them.
    pub config: Config,
    pub identity: Identity,
    /// The full node name.
    pub node: String,
    /// The boot's state, when it was read from there.
    pub state: Option<State>,
}

/// What the boot chose (its live state), else what a boot with these options would choose,
/// before `deadline`.
pub fn this_node(options: &Options, deadline: Instant) -> Result<ThisNode, Fail> {
    let cli = Cli {
        options: options.clone(),
        command: Some(Command::PrintEnv { format: EnvFormat::Shell, show_secrets: false }),
        program: None,
        tool: None,
    };
    let mut config = cli.into_config().map_err(|f| {
        // The error says already that no boot's state was found, and where.
        fail!(Exit::Config, "cannot tell which node this is: {:#}; or give --node NAME", f.error)
    })?;
    if let Some(state) = load_live(&config.runtime_dir) {
        // What is given on this command line still wins (--peer-query, --service, --ip).
        let ctx = crate::source::Context::new(&config, Instant::now());
        let identity = crate::source::apply_overrides(state.identity.clone(), &ctx)?;
        return Ok(ThisNode { config, identity, node: state.node.clone(), state: Some(state) });
    }
    config.timeout = deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1));
    let ctx = crate::source::Context::new(&config, Instant::now());
    let identity = crate::source::identify(&ctx)?;
    let node = match identity.host_name.as_deref().filter(|_| config.name_by == NameBy::Hostname) {
        Some(host) => format!("{}@{host}", config.node_basename),
        None => crate::env::node_name(&config.node_basename, identity.ip),
    };
    Ok(ThisNode { config, identity, node, state: None })
}

/// Writes the state of this process (the boot), readable by its owner only like the rest of the
/// runtime dir, in place (`template::write_in_place`: [`load_live`] checks what it reads).
/// With `--user`, `owner` is that user's (uid, gid): the file is theirs, like the runtime dir.
pub fn save(runtime_dir: &Path, mut state: State, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    state.pid = std::process::id() as i32;
    state.start_time = start_time(state.pid).unwrap_or_default();
    let path = runtime_dir.join(FILE_NAME);
    Ok(crate::template::write_in_place(&path, state.to_json().as_bytes(), 0o600, owner)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            pid: 1,
            start_time: 42,
            identity: Identity {
                platform: Platform::Swarm,
                ip: "10.0.1.4".parse().unwrap(),
                service: "hello".into(),
                peer_query: Some("tasks.hello".into()),
                host_name: None,
                extras: vec![("STACK_NAME", "demo".into())],
                evidence: "10.0.1.4 on eth1 is hello.1.x.net".into(),
            },
            node: "hello@10.0.1.4".into(),
            name_host: None,
            erl_aflags: None,
            tls: false,
            dist_port: Some(9100),
            cookie: CookieSource::File("/run/secrets/cookie".into()),
        }
    }

    #[test]
    fn round_trips_and_names_the_mode() {
        let text = state().to_json();
        assert!(text.contains("\"names\": \"longnames\""), "{text}");
        assert_eq!(State::from_json(&text).unwrap(), state());
        let home = State { cookie: CookieSource::Home, node: "rabbit@host".into(), ..state() };
        assert!(home.to_json().contains("shortnames"));
        assert_eq!(State::from_json(&home.to_json()).unwrap(), home);
    }

    #[test]
    fn foreign_files_are_refused() {
        assert!(State::from_json("{}").is_err());
        assert!(State::from_json("not json").is_err());
        assert!(State::from_json(&state().to_json().replace("\"version\": 1", "\"version\": 2")).is_err());
    }

    #[test]
    fn a_state_is_live_only_while_its_process_runs() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), state(), None).unwrap();
        let live = load_live(dir.path()).expect("our own process runs");
        assert_eq!(live.pid, std::process::id() as i32);
        let mut stale = live;
        stale.start_time += 1;
        std::fs::write(dir.path().join(FILE_NAME), stale.to_json()).unwrap();
        assert!(load_live(dir.path()).is_none());
    }
}
