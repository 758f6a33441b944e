//! A small blocking client of Erlang distribution: EPMD ([`epmd`]), the version-6 handshake as
//! a hidden node ([`handshake`]), just enough of the external term format ([`term`]), and a
//! function call through `rex` the way `erl_call` makes it ([`rpc`]). `probe`, `doctor` and the
//! mesh keeper (`src/mesh.rs`) stand on it.
//!
//! Written from OTP's "Distribution Protocol" and "External Term Format" pages and checked
//! against real OTP 25 nodes (tests/it/dist.rs). Std sockets, one deadline for everything: each
//! connect, read and write is given only the time left, so a peer that stalls, drips or floods
//! ends at the deadline with `timed out`, never later. What a peer sends is read with every
//! length checked before anything is allocated.
//!
//! Failures are an [`Error`]: the [`Step`] (EPMD, the distribution port, the handshake, the
//! call), the address, and a [`Failure`] in the words people search for (`refused`,
//! `timed out`, `not registered`, `cookie`).

pub mod epmd;
pub mod handshake;
pub mod rpc;
pub mod term;

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `name@host`, split; both parts non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName {
    pub alive: String,
    pub host: String,
}

impl NodeName {
    pub fn parse(text: &str) -> Result<NodeName, String> {
        let (alive, host) =
            text.split_once('@').ok_or_else(|| format!("node name {text:?} has no '@' (expected name@host)"))?;
        if alive.is_empty() || host.is_empty() {
            return Err(format!("node name {text:?} is not of the form name@host"));
        }
        if let Some(c) = alive.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
            return Err(format!("node name {text:?}: {c:?} is not allowed before the '@'"));
        }
        if text.chars().count() > 255 || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
            return Err(format!("node name {:?} is not a valid node name", text.escape_debug().to_string()));
        }
        Ok(NodeName { alive: alive.to_string(), host: host.to_string() })
    }

    /// Long names have a dot in the host, or are an address (`fd00::1` has none): a node with
    /// `-name` and one with `-sname` cannot talk to each other, so we take the target's form.
    pub fn is_long(&self) -> bool {
        self.host.contains('.') || self.host.contains(':')
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.alive, self.host)
    }
}

/// How a node is reached: its distribution port from EPMD (on `epmd_port`), or fixed with no
/// EPMD at all (`--dist-port`); and whether its handshake is TLS, which this client does not speak
/// (its EPMD and port can still be checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reach {
    pub tls: bool,
    pub dist_port: Option<u16>,
    pub epmd_port: u16,
}

impl Reach {
    /// The distribution port of the node named `alive` at `ip`: the fixed one, else EPMD's
    /// answer; `Ok(None)` when EPMD says it is not registered.
    pub fn port(&self, ip: std::net::IpAddr, alive: &str, deadline: Instant) -> Result<Option<u16>, Error> {
        match self.dist_port {
            Some(port) => Ok(Some(port)),
            None => Ok(epmd::port_please(ip, self.epmd_port, alive, deadline)?.map(|r| r.port)),
        }
    }
}

/// Where in the chain a failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Asking EPMD for the name's port.
    Epmd,
    /// TCP to the distribution port.
    Connect,
    /// The handshake on that connection.
    Handshake,
    /// The call through `rex`, after the handshake.
    Call,
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Refused,
    TimedOut,
    /// No host answers at the address (no route, or no reply to ARP/neighbour discovery).
    Unreachable,
    /// EPMD answered that the name is not registered.
    NotRegistered,
    /// The peer closed the connection right after our challenge reply: the cookies differ.
    Cookie,
    /// The peer's status in the handshake (`nok`, `not_allowed`, `alive`, ...).
    Status(String),
    /// The peer's digest does not match our cookie (it accepted ours: a broken peer).
    BadDigest,
    /// The peer closed the connection at another moment.
    Closed,
    /// What the peer sent is not what the protocol says.
    Garbage(String),
    /// Any other socket error (no route, network unreachable, ...).
    Io(String),
}

impl Failure {
    pub fn from_io(error: &io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::TimedOut,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Failure::Unreachable,
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                Failure::Closed
            }
            _ => Failure::Io(crate::exec::describe_io_error(error)),
        }
    }
}

/// A failed step against one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub step: Step,
    pub addr: SocketAddr,
    pub failure: Failure,
}

impl Error {
    pub fn new(step: Step, addr: SocketAddr, failure: Failure) -> Error {
        Error { step, addr, failure }
    }
}

/// `epmd on 10.0.1.4:4369 refused the connection`, `distribution port 10.0.1.4:41234 timed out`,
/// `the handshake with 10.0.1.4:41234 was dropped after our digest: the cookie differs`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr;
        let at = match self.step {
            Step::Epmd => format!("epmd on {addr}"),
            Step::Connect => format!("distribution port {addr}"),
            Step::Handshake => format!("the handshake with {addr}"),
            Step::Call => format!("the call on {addr}"),
        };
        match &self.failure {
            Failure::Refused if self.step == Step::Epmd => {
                write!(f, "{at} refused the connection (epmd on port {} is not running)", addr.port())
            }
            Failure::Refused => write!(f, "{at} refused the connection"),
            Failure::TimedOut => write!(f, "{at} timed out"),
            Failure::Unreachable => write!(f, "{at} is unreachable: no host answers at that address"),
            Failure::NotRegistered => write!(f, "not registered at {at}"),
            Failure::Cookie => write!(f, "{at} was dropped after our digest: the cookie differs"),
            Failure::Status(status) => write!(f, "{at} was refused by the node: {status}"),
            Failure::BadDigest => write!(f, "{at} failed: the node's digest does not match the cookie"),
            Failure::Closed => write!(f, "{at} was closed by the peer"),
            Failure::Garbage(why) => write!(f, "{at} failed: {why}"),
            Failure::Io(why) => write!(f, "{at} failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The time left before `deadline`, or `TimedOut`.
fn left(deadline: Instant) -> Result<Duration, Failure> {
    deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()).ok_or(Failure::TimedOut)
}

/// A TCP connection made before `deadline`, with no Nagle delay (every message we send is whole).
fn connect_before(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect_timeout(&addr, left(deadline)?).map_err(|e| Failure::from_io(&e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// That something listens on `addr`: a TCP connection made and closed, before `deadline` (for a
/// node whose handshake we cannot speak, TLS, or whose EPMD there is none of).
pub fn connect_port(addr: SocketAddr, deadline: Instant) -> Result<(), Error> {
    connect_before(addr, deadline).map(drop).map_err(|f| Error::new(Step::Connect, addr, f))
}

/// Fills `buf` before `deadline`: every read gets only the time left.
fn read_exact_before(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), Failure> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.set_read_timeout(Some(left(deadline)?)).map_err(|e| Failure::from_io(&e))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(Failure::Closed),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::from_io(&e)),
        }
    }
    Ok(())
}

/// Everything until the peer closes, at most `cap` bytes, before `deadline`.
fn read_to_end_before(stream: &mut TcpStream, cap: usize, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(left(deadline)?)).map_err(|e| Failure::from_io(&e))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) if out.len() + n > cap => return Err(Failure::Garbage(format!("answer longer than {cap} bytes"))),
            Ok(n) => out.extend(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::from_io(&e)),
        }
    }
}

/// 64 random bits for names and challenges: std's hasher keys come from the OS's random source.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        let n = NodeName::parse("rabbit@my-host").unwrap();
        assert_eq!((n.alive.as_str(), n.host.as_str(), n.is_long()), ("rabbit", "my-host", false));
        assert!(NodeName::parse("hello@10.0.1.4").unwrap().is_long());
        assert!(NodeName::parse("hello@fd00::1").unwrap().is_long());
        for bad in ["hello", "@host", "hello@", "he llo@h", "a@b c", "a@b@c"] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_hold_the_words_people_search_for() {
        let addr: SocketAddr = "10.0.1.4:4369".parse().unwrap();
        let says = |step, failure| Error::new(step, addr, failure).to_string();
        assert!(
            says(Step::Epmd, Failure::Refused).contains("epmd") && says(Step::Epmd, Failure::Refused).contains("4369")
        );
        assert!(says(Step::Epmd, Failure::NotRegistered).contains("not registered"));
        assert!(says(Step::Connect, Failure::TimedOut).contains("timed out"));
        assert!(says(Step::Handshake, Failure::Cookie).contains("cookie"));
    }

    #[test]
    fn random_words_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
