//! `--init --mesh`: the mesh keeper. While rancher-boot supervises the VM as PID 1, a thread of
//! its own keeps the cluster meshed from outside the app, so that a release needs no libcluster,
//! dns_cluster or poller of its own.
//!
//! What this module owns: the keeper's loop, its connection to its own VM, and which of its
//! failures are worth a log line. It leaves the peer query to [`crate::discovery`] (the very look
//! the boot made), the protocol to [`crate::dist`], and signals, reaping and the exit to
//! [`crate::init`], which starts the keeper only after the program is spawned (see below).
//!
//! Every interval (`--mesh-interval`, default 5 s), one round:
//! 1. its own VM: connected as a hidden node with the cookie (EPMD on the node's address is asked
//!    for the port, unless [`Target::dist_port`] fixes it), and re-connected whenever the
//!    connection was lost;
//! 2. the peers: looked up as the boot did, named as the boot named them (`basename@ip`, or with
//!    `--name-by hostname` `basename@fqdn` from [`crate::discovery::hostnames`]);
//! 3. `erlang:nodes()` through `rex`, then `net_kernel:connect_node/1` for each peer the VM is not
//!    connected to, all in flight at once (`rex` runs each call in a process of its own, so one
//!    peer that does not answer holds up no other). It never disconnects anyone: a partial answer
//!    loses nothing, and each keeper connects every peer itself rather than leaning on `global`'s
//!    transitive connects (which `-kernel connect_all false` turns off).
//!
//! Ticks: the VM drops a connection that has been silent for `net_ticktime` (60 s). Each round's
//! calls are traffic, and the ticks the VM sends are answered while a call waits; between rounds
//! the keeper sends a tick of its own every [`TICK`] when the interval is longer than that. A
//! connection that is lost anyway (the VM closed it, a call timed out mid-frame) is dropped and
//! made again at the next round.
//!
//! Logging: a failure (DNS down, the VM not registered, a refused connection, peers the VM
//! cannot reach) is one warning when it has lasted two rounds in a row (so within two intervals
//! of its start; a one-round blip stays quiet), then at most one a minute while it lasts, and one
//! info line when it ends. Before its VM has ever been reached the keeper is waiting for a VM
//! that is starting, and says so only after [`START_GRACE`]. With `-v`, each connect it asked
//! for is logged with the VM's answer.
//!
//! Fork safety: the keeper thread is started by `init` after the child is spawned, and rancher-boot
//! forks nothing after that, so no fork ever happens while this thread may hold a lock (the
//! allocator's, the logger's). The thread inherits the main thread's signal mask, in which every
//! forwarded signal and SIGCHLD is blocked: they stay for `init`'s `sigtimedwait`, never for this
//! thread. Nothing here waits on `init`, and `init` never waits on this thread: when the program
//! exits, rancher-boot exits with its status whatever the keeper is doing.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::cli::PeerMode;
use crate::dist::handshake::{self, Connection};
use crate::dist::term::Term;
use crate::dist::{NodeName, Reach, rpc};

/// Between rounds, a tick at least this often (a quarter of the default `net_ticktime`).
pub const TICK: Duration = Duration::from_secs(15);
/// How long the VM may take to come up before "not registered" is a failure worth a line.
pub const START_GRACE: Duration = Duration::from_secs(30);
/// A lasting failure is repeated at most this often.
pub const REPEAT: Duration = Duration::from_secs(60);
/// For the handshake and `erlang:nodes()`.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// For the connects: `net_kernel:connect_node/1` waits up to `net_setuptime` (7 s by default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the keeper finds its own VM.
#[derive(Clone, Debug)]
pub struct Target {
    /// The VM's name, as exported in `NODE_NAME`.
    pub node: NodeName,
    /// The node's address: EPMD is asked there, and the distribution port is reached there.
    pub ip: IpAddr,
    /// EPMD's port (`ERL_EPMD_PORT`, as erl reads it), or a fixed distribution port
    /// (`--dist-port`: connect to `ip:port` and ask no EPMD).
    pub reach: Reach,
}

/// How the peers are found and named: the boot's own query.
#[derive(Clone, Debug)]
pub struct Peers {
    pub mode: PeerMode,
    /// The peer query (`--peer-query`, else the source's).
    pub query: String,
    pub dns_server: Option<SocketAddr>,
    pub metadata_url: String,
    /// This node's address, left out of the answer.
    pub self_ip: IpAddr,
    /// The node name's part before the `@`, which every peer shares.
    pub basename: String,
    /// With `--name-by hostname`: this node's FQDN; the peers are named by theirs.
    pub name_host: Option<String>,
}

/// Everything the keeper needs, checked before the exec.
#[derive(Clone)]
pub struct Keeper {
    pub target: Target,
    pub cookie: String,
    pub interval: Duration,
    pub peers: Peers,
}

/// The cookie is a secret: never in a debug line.
impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("target", &self.target)
            .field("interval", &self.interval)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl Keeper {
    /// Starts the keeper on a thread of its own. Call only once the program is spawned.
    pub fn start(self) {
        let started = std::thread::Builder::new().name("mesh".into()).spawn(move || self.run());
        if let Err(e) = started {
            log::warn!("mesh: cannot start the keeper's thread: {e}; the cluster is not kept meshed");
        }
    }

    /// Rounds, every interval, for ever.
    pub fn run(self) {
        let mut state = Round::new(Instant::now());
        loop {
            let began = Instant::now();
            self.round(&mut state);
            state.wait(began + self.interval);
        }
    }

    /// One round: the VM, the peers, the connects.
    fn round(&self, state: &mut Round) {
        let now = Instant::now();
        if state.conn.is_none() {
            match self.connect(now + CALL_TIMEOUT) {
                Ok(conn) => {
                    state.vm.ok(now);
                    if !state.reached {
                        log::debug!("mesh: connected to {} on {}", self.target.node, conn.addr);
                        state.reached = true;
                    }
                    state.conn = Some(conn);
                    state.last_sent = now;
                }
                Err(why) => {
                    if state.reached || state.started.elapsed() >= START_GRACE || !why.starting {
                        state.vm.fail(now, &why.text);
                    } else {
                        log::debug!("mesh: waiting for the VM: {}", why.text);
                    }
                    return;
                }
            }
        }

        // A look bounded by the interval (within reason): a DNS that hangs costs one interval a round.
        let wanted = match self.look(now + self.interval.clamp(Duration::from_millis(500), Duration::from_secs(10))) {
            Ok(wanted) => {
                state.dns.ok(now);
                wanted
            }
            Err(why) => {
                state.dns.fail(now, &why);
                return;
            }
        };

        let Some(conn) = state.conn.as_mut() else { return };
        match connect_missing(conn, &self.target.node.to_string(), &wanted) {
            Ok(refused) if refused.is_empty() => {
                state.vm.ok(now);
                state.peers.ok(now);
            }
            Ok(refused) => {
                state.vm.ok(now);
                state.peers.fail(now, &format!("{} cannot reach {}", self.target.node, refused.join(", ")));
            }
            Err(why) => {
                // The connection is in an unknown state (a call given up mid-frame): made anew.
                state.conn = None;
                state.vm.fail(now, &why);
            }
        }
        state.last_sent = Instant::now();
    }

    /// The hidden connection to our own VM.
    fn connect(&self, deadline: Instant) -> Result<Connection, ConnectError> {
        let target = &self.target;
        let port = match target.reach.port(target.ip, &target.node.alive, deadline) {
            Ok(Some(port)) => port,
            Ok(None) => {
                return Err(ConnectError {
                    text: format!("{} is not registered at epmd on {}", target.node, target.ip),
                    starting: true,
                });
            }
            Err(e) => return Err(ConnectError { text: format!("cannot reach {}: {e}", target.node), starting: true }),
        };
        let addr = SocketAddr::new(target.ip, port);
        let conn = handshake::connect(addr, &target.node, &self.cookie, deadline).map_err(|e| ConnectError {
            starting: matches!(e.failure, crate::dist::Failure::Refused),
            text: format!("cannot connect to {}: {e}", target.node),
        })?;
        if conn.peer != target.node.to_string() {
            return Err(ConnectError {
                text: format!("the node on {addr} is {}, not {}", conn.peer, target.node),
                starting: false,
            });
        }
        // A write to a VM that stopped reading must not hang the keeper for ever.
        let _ = conn.stream.set_write_timeout(Some(CALL_TIMEOUT));
        Ok(conn)
    }

    /// The peers' node names, as the boot named them.
    fn look(&self, deadline: Instant) -> Result<Vec<String>, String> {
        let p = &self.peers;
        let ips = crate::discovery::look_again(p.mode, &p.query, p.dns_server, &p.metadata_url, p.self_ip, deadline)?;
        let Some(own) = &p.name_host else {
            return Ok(ips.iter().map(|ip| crate::env::node_name(&p.basename, *ip)).collect());
        };
        let mut warnings = Vec::new();
        let named = crate::discovery::hostnames::name_peers_noting(
            own,
            Some(&p.query),
            &ips,
            p.self_ip,
            p.dns_server,
            deadline,
            &mut |level, note| {
                log::debug!("mesh: {note}");
                if level <= log::Level::Warn {
                    warnings.push(note);
                }
            },
        );
        if named.is_empty() && !warnings.is_empty() {
            return Err(warnings.join("; "));
        }
        Ok(named.into_iter().map(|(_, host)| format!("{}@{host}", p.basename)).collect())
    }
}

/// Why the VM could not be reached; `starting`: what a VM that is still starting looks like.
#[derive(Debug)]
struct ConnectError {
    text: String,
    starting: bool,
}

/// Asks the VM behind `conn` (named `own`) for `erlang:nodes()`, then to connect each of `wanted`
/// missing there. The peers whose connect answered anything but `true`; `Err` when the
/// connection failed.
fn connect_missing(conn: &mut Connection, own: &str, wanted: &[String]) -> Result<Vec<String>, String> {
    let reply = rpc::call(conn, "erlang", "nodes", vec![], Instant::now() + CALL_TIMEOUT).map_err(|e| e.to_string())?;
    let connected = reply.as_list().ok_or_else(|| format!("erlang:nodes() answered {reply}"))?;
    let connected: Vec<&str> = connected.iter().filter_map(Term::as_atom).collect();
    let missing: Vec<&String> = wanted.iter().filter(|w| *w != own && !connected.contains(&w.as_str())).collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut pending = Vec::with_capacity(missing.len());
    for peer in &missing {
        pending.push(rpc::send(conn, "net_kernel", "connect_node", vec![Term::atom(peer)]).map_err(|e| e.to_string())?);
    }
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut answers: Vec<Option<Term>> = vec![None; missing.len()];
    while answers.iter().any(Option::is_none) {
        let (at, answer) = rpc::receive(conn, &pending, deadline).map_err(|e| e.to_string())?;
        log::debug!("mesh: asked {own} to connect {}: {answer}", missing[at]);
        answers[at] = Some(answer);
        // Answered: a late duplicate for this pid can no longer match.
        pending[at].id = 0;
    }
    Ok(missing
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.as_ref().and_then(Term::as_atom) != Some("true"))
        .map(|(peer, _)| peer.to_string())
        .collect())
}

/// What lasts from one round to the next.
struct Round {
    started: Instant,
    conn: Option<Connection>,
    /// When we last sent the VM anything (a call or a tick).
    last_sent: Instant,
    /// Whether the VM was ever reached: before that, a missing VM is one still starting.
    reached: bool,
    vm: Trouble,
    dns: Trouble,
    peers: Trouble,
}

impl Round {
    fn new(now: Instant) -> Round {
        Round {
            started: now,
            conn: None,
            last_sent: now,
            reached: false,
            vm: Trouble::new("its own VM"),
            dns: Trouble::new("the peer look-up"),
            peers: Trouble::new("connecting the peers"),
        }
    }

    /// Sleeps until `until`, sending a tick whenever [`TICK`] has passed without traffic.
    fn wait(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let tick_at = self.last_sent + TICK;
            if self.conn.is_some() && now >= tick_at {
                let sent = self.conn.as_mut().map(|c| std::io::Write::write_all(&mut c.stream, &[0; 4]));
                if let Some(Err(_)) = sent {
                    log::debug!("mesh: the connection to the VM is lost; made again at the next round");
                    self.conn = None;
                }
                self.last_sent = now;
                continue;
            }
            let next = if self.conn.is_some() { until.min(tick_at) } else { until };
            std::thread::sleep(next.saturating_duration_since(now));
        }
    }
}

/// One kind of failure and when it was said: see the module's "Logging".
#[derive(Debug)]
struct Trouble {
    what: &'static str,
    /// When the failure started, and how many rounds in a row it has been seen.
    since: Option<Instant>,
    rounds: u32,
    /// When it was last logged in this episode.
    said: Option<Instant>,
}

impl Trouble {
    fn new(what: &'static str) -> Trouble {
        Trouble { what, since: None, rounds: 0, said: None }
    }

    fn fail(&mut self, now: Instant, why: &str) {
        let since = *self.since.get_or_insert(now);
        self.rounds += 1;
        match self.said {
            None if self.rounds >= 2 => log::warn!("mesh: {why}"),
            Some(said) if now.duration_since(said) >= REPEAT => {
                log::warn!("mesh: {why} (for {} s)", now.duration_since(since).as_secs());
            }
            _ => {
                log::debug!("mesh: {why}");
                return;
            }
        }
        self.said = Some(now);
    }

    fn ok(&mut self, now: Instant) {
        if let (Some(since), Some(_)) = (self.since, self.said) {
            log::info!("mesh: {} works again after {} s", self.what, now.duration_since(since).as_secs());
        }
        *self = Trouble::new(self.what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_said_at_its_second_round_then_once_a_minute_and_its_end_once() {
        let t0 = Instant::now();
        let mut t = Trouble::new("x");
        t.fail(t0, "down");
        assert_eq!(t.said, None, "a one-round blip stays quiet");
        t.fail(t0 + Duration::from_secs(5), "down");
        assert_eq!(t.said, Some(t0 + Duration::from_secs(5)));
        t.fail(t0 + Duration::from_secs(30), "down");
        assert_eq!(t.said, Some(t0 + Duration::from_secs(5)), "not again within the minute");
        t.fail(t0 + Duration::from_secs(65), "down");
        assert_eq!(t.said, Some(t0 + Duration::from_secs(65)));
        t.ok(t0 + Duration::from_secs(70));
        assert_eq!((t.since, t.rounds, t.said), (None, 0, None));
        t.fail(t0 + Duration::from_secs(75), "down");
        t.ok(t0 + Duration::from_secs(80));
        assert_eq!(t.rounds, 0, "a blip ends as quietly as it came");
    }

    #[test]
    fn the_keeper_never_shows_the_cookie() {
        let keeper = Keeper {
            target: Target {
                node: NodeName::parse("hello@10.0.0.2").unwrap(),
                ip: "10.0.0.2".parse().unwrap(),
                reach: Reach { tls: false, dist_port: None, epmd_port: crate::dist::epmd::DEFAULT_PORT },
            },
            cookie: "s3cr3t-c00kie".into(),
            interval: Duration::from_secs(5),
            peers: Peers {
                mode: PeerMode::Dns,
                query: "hello".into(),
                dns_server: None,
                metadata_url: String::new(),
                self_ip: "10.0.0.2".parse().unwrap(),
                basename: "hello".into(),
                name_host: None,
            },
        };
        assert!(!format!("{keeper:?}").contains("s3cr3t"));
    }
}
