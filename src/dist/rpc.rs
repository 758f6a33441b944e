//! A function call on a connected node through its `rex` server, the way `erl_call` makes one,
//! and the frames that carry it.
//!
//! After the handshake every frame has a `u32` length; a zero-length frame is a tick, answered
//! with one of ours. A message frame is `112` (pass-through: we asked for no atom cache), the
//! control term, then the message. We send `REG_SEND` to `rex`:
//! `{6, From, '', rex}` and `{From, {call, M, F, Args, user}}`; `rex` answers `From ! {rex, Reply}`
//! with a `SEND` whose control is `{2, '', From}`. A failed call is `{badrpc, Why}` in `Reply`:
//! that is the caller's to read. Several calls may be in flight at once ([`send`], then
//! [`receive`]): each has a pid of its own, and a reply is matched to its call by that pid.

use std::io::Write;
use std::time::Instant;

use super::handshake::Connection;
use super::term::{self, Decoder, Pid, Term};
use super::{Error, Failure, Step, read_exact_before};

/// The largest frame we read: replies we ask for are a few KB; more is refused, not buffered.
pub const MAX_FRAME: usize = 1024 * 1024;

const PASS_THROUGH: u8 = 112;
const SEND: i64 = 2;
const REG_SEND: i64 = 6;

/// `M:F(Args)` on the node behind `conn`, before `deadline`: the reply `rex` sends back (which is
/// `{badrpc, Why}` when the call failed there).
pub fn call(
    conn: &mut Connection,
    module: &str,
    function: &str,
    args: Vec<Term>,
    deadline: Instant,
) -> Result<Term, Error> {
    let from = send(conn, module, function, args)?;
    receive(conn, std::slice::from_ref(&from), deadline).map(|(_, reply)| reply)
}

/// Sends the call `M:F(Args)` and returns the pid its reply will be sent to. Several calls may
/// be in flight at once: `rex` runs each in a process of its own, so a slow one (a
/// `net_kernel:connect_node/1` to a peer that does not answer) does not hold up the others.
pub fn send(conn: &mut Connection, module: &str, function: &str, args: Vec<Term>) -> Result<Pid, Error> {
    conn.calls += 1;
    let from = Pid { node: conn.local.clone(), id: conn.calls, serial: 0, creation: conn.creation };
    let frame = request(&from, module, function, args);
    conn.stream.write_all(&frame).map_err(|e| Error::new(Step::Call, conn.addr, Failure::from_io(&e)))?;
    Ok(from)
}

/// Reads frames, answering ticks, until the reply to one of `pending` arrives before `deadline`:
/// its index in `pending` and the reply. Replies to other pids (a call given up earlier) are
/// passed over.
pub fn receive(conn: &mut Connection, pending: &[Pid], deadline: Instant) -> Result<(usize, Term), Error> {
    let addr = conn.addr;
    let fail = |failure| Error::new(Step::Call, addr, failure);
    loop {
        let mut len = [0u8; 4];
        read_exact_before(&mut conn.stream, &mut len, deadline).map_err(fail)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            // A tick: the node checks that we are alive.
            conn.stream.write_all(&[0; 4]).map_err(|e| fail(Failure::from_io(&e)))?;
            continue;
        }
        if len > MAX_FRAME {
            return Err(fail(Failure::Garbage(format!("a frame of {len} bytes (at most {MAX_FRAME} are read)"))));
        }
        let mut body = vec![0u8; len];
        read_exact_before(&mut conn.stream, &mut body, deadline).map_err(fail)?;
        if let Some(found) = parse_frame_for(&body, pending).map_err(|why| fail(Failure::Garbage(why)))? {
            return Ok(found);
        }
    }
}

/// The whole frame of a call, length included.
pub fn request(from: &Pid, module: &str, function: &str, args: Vec<Term>) -> Vec<u8> {
    let control = Term::Tuple(vec![Term::Int(REG_SEND), Term::Pid(from.clone()), Term::atom(""), Term::atom("rex")]);
    let call = Term::Tuple(vec![
        Term::atom("call"),
        Term::atom(module),
        Term::atom(function),
        Term::list(args),
        Term::atom("user"),
    ]);
    let message = Term::Tuple(vec![Term::Pid(from.clone()), call]);
    let mut body = vec![PASS_THROUGH];
    term::encode(&control, &mut body);
    term::encode(&message, &mut body);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// The reply in one frame (without its length): `Some(Reply)` for `{rex, Reply}` sent to `from`,
/// `None` for any other message or control signal (the caller reads on).
pub fn parse_frame(body: &[u8], from: &Pid) -> Result<Option<Term>, String> {
    parse_frame_for(body, std::slice::from_ref(from)).map(|found| found.map(|(_, reply)| reply))
}

/// As [`parse_frame`], for a reply to any of `pending`: its index and the reply.
pub fn parse_frame_for(body: &[u8], pending: &[Pid]) -> Result<Option<(usize, Term)>, String> {
    let Some((&PASS_THROUGH, rest)) = body.split_first() else {
        return Err(format!("a frame starts with {:?}, not 112 (pass-through)", body.first()));
    };
    let mut decoder = Decoder::new(rest);
    let control = decoder.term().map_err(|e| format!("control message: {e}"))?;
    let Term::Tuple(control) = control else {
        return Err(format!("control message {control} is not a tuple"));
    };
    if decoder.rest().is_empty() {
        return Ok(None); // a signal without a message (link, monitor, exit)
    }
    let message = decoder.term().map_err(|e| format!("message: {e}"))?;
    if !decoder.rest().is_empty() {
        return Err(format!("{} bytes after the message", decoder.rest().len()));
    }
    let to = match control.as_slice() {
        [Term::Int(SEND), _, Term::Pid(to)] => pending.iter().position(|p| p == to),
        _ => None,
    };
    match (to, message) {
        (Some(at), Term::Tuple(mut items)) if items.len() == 2 && items[0].as_atom() == Some("rex") => {
            Ok(items.pop().map(|reply| (at, reply)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid() -> Pid {
        Pid { node: "rancher-boot-1@127.0.0.1".into(), id: 1, serial: 0, creation: 5 }
    }

    fn reply_frame(to: &Pid, message: &Term) -> Vec<u8> {
        let mut body = vec![PASS_THROUGH];
        term::encode(&Term::Tuple(vec![Term::Int(SEND), Term::atom(""), Term::Pid(to.clone())]), &mut body);
        term::encode(message, &mut body);
        body
    }

    #[test]
    fn a_call_is_one_frame_for_rex() {
        let frame = request(&pid(), "erlang", "node", vec![]);
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
        assert_eq!(frame[4], PASS_THROUGH);
        let mut d = Decoder::new(&frame[5..]);
        assert_eq!(d.term().unwrap().to_string(), "{6,<rancher-boot-1@127.0.0.1.1.0>,,rex}");
        assert_eq!(d.term().unwrap().to_string(), "{<rancher-boot-1@127.0.0.1.1.0>,{call,erlang,node,[],user}}");
    }

    #[test]
    fn the_reply_is_found_and_others_are_passed_over() {
        let ours = reply_frame(&pid(), &Term::Tuple(vec![Term::atom("rex"), Term::atom("hello@h")]));
        assert_eq!(parse_frame(&ours, &pid()), Ok(Some(Term::atom("hello@h"))));
        let other = Pid { id: 9, ..pid() };
        let theirs = reply_frame(&other, &Term::Tuple(vec![Term::atom("rex"), Term::atom("x")]));
        assert_eq!(parse_frame(&theirs, &pid()), Ok(None));
        let not_rex = reply_frame(&pid(), &Term::atom("hello"));
        assert_eq!(parse_frame(&not_rex, &pid()), Ok(None));
        assert!(parse_frame(&[113, 131, 106], &pid()).is_err());
        assert!(parse_frame(&[], &pid()).is_err());
        assert!(parse_frame(&[112, 131, 106], &pid()).is_err());
    }

    #[test]
    fn a_reply_is_matched_to_the_call_in_flight_it_answers() {
        let calls = [pid(), Pid { id: 2, ..pid() }, Pid { id: 3, ..pid() }];
        let second = reply_frame(&calls[1], &Term::Tuple(vec![Term::atom("rex"), Term::atom("true")]));
        assert_eq!(parse_frame_for(&second, &calls), Ok(Some((1, Term::atom("true")))));
        assert_eq!(parse_frame_for(&second, &calls[2..]), Ok(None));
    }
}
