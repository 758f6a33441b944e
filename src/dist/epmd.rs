//! The two questions rancher-boot asks EPMD: on which port does a name listen
//! (`PORT_PLEASE2_REQ`), and which names are registered (`NAMES_REQ`).
//!
//! One TCP connection per request, as EPMD wants: a `u16` length, the request; EPMD answers and
//! closes. We never register (`ALIVE2_REQ`): a probe leaves no trace in `epmd -names`. The
//! answer parsers are pure, for the `dist_reply` fuzz target.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Error, Failure, Step, connect_before, read_to_end_before};

/// EPMD's port, unless `ERL_EPMD_PORT` names another (as `erl` and `erl_call` read it).
pub const DEFAULT_PORT: u16 = 4369;

/// Answers are small: a registration is under 300 bytes, a name list a few KB.
const MAX_ANSWER: usize = 64 * 1024;

const PORT_PLEASE2_REQ: u8 = 122;
const PORT2_RESP: u8 = 119;
const NAMES_REQ: u8 = 110;

/// A name's registration, as EPMD holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub port: u16,
    /// 77 a normal node, 72 a hidden one.
    pub node_type: u8,
    /// 0: TCP/IPv4 (EPMD says 0 for `inet6_tcp` and `inet_tls` too).
    pub protocol: u8,
    pub highest: u16,
    pub lowest: u16,
    pub name: String,
}

/// The port EPMD listens on: `ERL_EPMD_PORT`, as Erlang reads it, else 4369.
pub fn port_from_env(value: Option<&str>) -> u16 {
    value.and_then(|v| v.trim().parse().ok()).filter(|p| *p != 0).unwrap_or(DEFAULT_PORT)
}

/// EPMD's port for this process: [`port_from_env`] of its `ERL_EPMD_PORT`.
pub fn configured_port() -> u16 {
    port_from_env(std::env::var("ERL_EPMD_PORT").ok().as_deref())
}

/// Where `alive` (the name before the `@`) listens on `ip`: `Ok(None)` when EPMD answers that it
/// is not registered.
pub fn port_please(ip: IpAddr, epmd_port: u16, alive: &str, deadline: Instant) -> Result<Option<Registration>, Error> {
    let mut request = vec![PORT_PLEASE2_REQ];
    request.extend(alive.as_bytes());
    let answer = ask(SocketAddr::new(ip, epmd_port), &request, deadline)?;
    parse_port2_resp(&answer)
        .map_err(|why| Error::new(Step::Epmd, SocketAddr::new(ip, epmd_port), Failure::Garbage(why)))
}

/// Every name registered at the EPMD of `ip`, with its port.
pub fn names(ip: IpAddr, epmd_port: u16, deadline: Instant) -> Result<Vec<(String, u16)>, Error> {
    let answer = ask(SocketAddr::new(ip, epmd_port), &[NAMES_REQ], deadline)?;
    parse_names(&answer).map_err(|why| Error::new(Step::Epmd, SocketAddr::new(ip, epmd_port), Failure::Garbage(why)))
}

fn ask(addr: SocketAddr, request: &[u8], deadline: Instant) -> Result<Vec<u8>, Error> {
    let fail = |failure| Error::new(Step::Epmd, addr, failure);
    let mut stream = connect_before(addr, deadline).map_err(fail)?;
    let len = u16::try_from(request.len()).map_err(|_| fail(Failure::Garbage("request too long".into())))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend(request);
    stream.write_all(&framed).map_err(|e| fail(Failure::from_io(&e)))?;
    read_to_end_before(&mut stream, MAX_ANSWER, deadline).map_err(fail)
}

/// `[119][result]`, then on success `port u16, type u8, protocol u8, highest u16, lowest u16,
/// nlen u16, name, elen u16, extra`. A non-zero result is "not registered".
pub fn parse_port2_resp(answer: &[u8]) -> Result<Option<Registration>, String> {
    match answer {
        [] => Err("EPMD closed without an answer".into()),
        [PORT2_RESP, 0, rest @ ..] => {
            let field = |at: usize| -> Result<u16, String> {
                rest.get(at..at + 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .ok_or_else(|| "answer ends early".to_string())
            };
            let (port, highest, lowest, nlen) = (field(0)?, field(4)?, field(6)?, usize::from(field(8)?));
            let name = rest.get(10..10 + nlen).ok_or("answer ends inside the name")?;
            Ok(Some(Registration {
                port,
                node_type: rest[2],
                protocol: rest[3],
                highest,
                lowest,
                name: String::from_utf8_lossy(name).into_owned(),
            }))
        }
        [PORT2_RESP, _, ..] => Ok(None),
        [PORT2_RESP] => Err("answer ends after its tag".into()),
        [tag, ..] => Err(format!("answer tag {tag}, not {PORT2_RESP}")),
    }
}

/// `epmd port u32`, then lines `name N at port P\n`.
pub fn parse_names(answer: &[u8]) -> Result<Vec<(String, u16)>, String> {
    let text = answer.get(4..).ok_or("answer ends before EPMD's port")?;
    let text = std::str::from_utf8(text).map_err(|_| "names are not UTF-8".to_string())?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let rest = line
                .strip_prefix("name ")
                .ok_or_else(|| format!("unexpected line {:?}", line.escape_debug().to_string()))?;
            let (name, port) = rest
                .rsplit_once(" at port ")
                .ok_or_else(|| format!("unexpected line {:?}", line.escape_debug().to_string()))?;
            let port =
                port.parse().map_err(|_| format!("port {:?} is not a number", port.escape_debug().to_string()))?;
            Ok((name.to_string(), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_as_otp_25_answers() {
        // `erl -name hello@127.0.0.1` listening on 41234, versions 5..6.
        let mut answer = vec![119, 0, 0xa1, 0x12, 77, 0, 0, 6, 0, 5, 0, 5];
        answer.extend(b"hello");
        answer.extend([0, 0]);
        let reg = parse_port2_resp(&answer).unwrap().unwrap();
        assert_eq!((reg.port, reg.node_type, reg.highest, reg.lowest, reg.name.as_str()), (41234, 77, 6, 5, "hello"));
        assert_eq!(parse_port2_resp(&[119, 1]), Ok(None));
    }

    #[test]
    fn short_and_foreign_answers_are_errors() {
        for bad in [&[][..], &[119], &[119, 0, 1], &[119, 0, 0, 1, 77, 0, 0, 6, 0, 5, 0, 9, b'x'], &[42, 0]] {
            assert!(parse_port2_resp(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_lines() {
        let mut answer = vec![0, 0, 0x11, 0x11];
        answer.extend(b"name rabbit at port 25672\nname hello at port 41234\n");
        assert_eq!(parse_names(&answer).unwrap(), [("rabbit".to_string(), 25672), ("hello".to_string(), 41234)]);
        assert!(parse_names(b"\0\0\x11\x11name x at port many\n").is_err());
        assert!(parse_names(b"\0\0").is_err());
    }

    #[test]
    fn epmd_port_from_the_environment() {
        assert_eq!(port_from_env(None), 4369);
        assert_eq!(port_from_env(Some("4370")), 4370);
        assert_eq!(port_from_env(Some("zero")), 4369);
    }
}
