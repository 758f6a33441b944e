//! The distribution handshake, version 6 (OTP 23+; OTP 25 accepts no other), from the side that
//! connects, as a hidden node:
//!
//! ```text
//! us   → node  'N' flags u64, creation u32, nlen u16, name     our name and capabilities
//! node → us    's' status                                       ok | ok_simultaneous | nok | not_allowed | alive
//! node → us    'N' flags u64, challenge u32, creation u32, nlen u16, name
//! us   → node  'r' our challenge u32, MD5(cookie ++ its challenge as decimal text)
//! node → us    'a' MD5(cookie ++ our challenge as decimal text)
//! ```
//!
//! Each message has a `u16` length in front. A node whose cookie differs closes the socket after
//! our `'r'` without a word (it logs "Invalid challenge reply" on its side): that close is the
//! [`Failure::Cookie`] verdict. Leaving out the `PUBLISHED` flag makes us hidden: not in the
//! node's `nodes()`, and never connected on to its peers. Our name is new for every connection
//! (`rancher-boot-<random>`) so that two probes never clash (`alive`); we register nothing.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::{Error, Failure, NodeName, Step, connect_before, random_u64, read_exact_before};

// Capabilities (OTP's dist.hrl): OTP 25's mandatory set, OTP 26's additions, and the digest
// flag that stands for the set. `PUBLISHED` (0x1) stays off: we are a hidden node. Nothing that
// would make the node send us atom caches, fragments or other control messages is set.
const EXTENDED_REFERENCES: u64 = 0x4;
const FUN_TAGS: u64 = 0x10;
const NEW_FUN_TAGS: u64 = 0x80;
const EXTENDED_PIDS_PORTS: u64 = 0x100;
const EXPORT_PTR_TAG: u64 = 0x200;
const BIT_BINARIES: u64 = 0x400;
const NEW_FLOATS: u64 = 0x800;
const UTF8_ATOMS: u64 = 0x10000;
const MAP_TAG: u64 = 0x20000;
const BIG_CREATION: u64 = 0x40000;
pub const HANDSHAKE_23: u64 = 0x100_0000;
const UNLINK_ID: u64 = 0x200_0000;
/// `0x4000000` in OTP's `dist.hrl`; the docs page's `1 bsl 36` is wrong.
const MANDATORY_25_DIGEST: u64 = 0x400_0000;
const V4_NC: u64 = 0x4_0000_0000;

/// What we tell the node we can do.
pub const OUR_FLAGS: u64 = EXTENDED_REFERENCES
    | FUN_TAGS
    | NEW_FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | HANDSHAKE_23
    | UNLINK_ID
    | MANDATORY_25_DIGEST
    | V4_NC;

/// The node's challenge message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u64,
    pub challenge: u32,
    pub creation: u32,
    pub name: String,
}

/// An open connection after a completed handshake: who we are on it, and who the node is.
#[derive(Debug)]
pub struct Connection {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    /// Our node name on this connection.
    pub local: String,
    /// Our creation: the same in every pid we send.
    pub creation: u32,
    /// The node's name, as it gave it.
    pub peer: String,
    pub peer_flags: u64,
    /// Calls made on this connection: each uses a pid of its own.
    pub calls: u32,
}

/// Connects to `addr` and completes the handshake with the node `target` (whose form, long or
/// short, our own name takes), with `cookie`, before `deadline`.
pub fn connect(addr: SocketAddr, target: &NodeName, cookie: &str, deadline: Instant) -> Result<Connection, Error> {
    let mut stream = connect_before(addr, deadline).map_err(|f| Error::new(Step::Connect, addr, f))?;
    let fail = |failure| Error::new(Step::Handshake, addr, failure);
    let host = if target.is_long() { "127.0.0.1" } else { "localhost" };
    let random = random_u64();
    let local = format!("rancher-boot-{:08x}@{host}", random as u32);
    let creation = ((random >> 32) as u32).max(1);

    send(&mut stream, &send_name(&local, creation)).map_err(fail)?;
    let status = parse_status(&receive(&mut stream, deadline).map_err(fail)?).map_err(|w| fail(Failure::Garbage(w)))?;
    if status != "ok" && status != "ok_simultaneous" {
        return Err(fail(Failure::Status(status)));
    }
    let challenge =
        parse_challenge(&receive(&mut stream, deadline).map_err(fail)?).map_err(|w| fail(Failure::Garbage(w)))?;

    let ours = (random_u64() as u32).max(1);
    let mut reply = vec![b'r'];
    reply.extend(ours.to_be_bytes());
    reply.extend(digest(cookie, challenge.challenge));
    send(&mut stream, &reply).map_err(fail)?;
    let ack = match receive(&mut stream, deadline) {
        Ok(ack) => ack,
        Err(Failure::Closed) => return Err(fail(Failure::Cookie)),
        Err(other) => return Err(fail(other)),
    };
    let theirs = parse_ack(&ack).map_err(|w| fail(Failure::Garbage(w)))?;
    if theirs != digest(cookie, ours) {
        return Err(fail(Failure::BadDigest));
    }
    Ok(Connection { stream, addr, local, creation, peer: challenge.name, peer_flags: challenge.flags, calls: 0 })
}

fn send_name(local: &str, creation: u32) -> Vec<u8> {
    let mut message = vec![b'N'];
    message.extend(OUR_FLAGS.to_be_bytes());
    message.extend(creation.to_be_bytes());
    message.extend((local.len() as u16).to_be_bytes());
    message.extend(local.as_bytes());
    message
}

/// MD5 of the cookie followed by the challenge as unsigned decimal text.
pub fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    let mut context = md5::Context::new();
    context.consume(cookie.as_bytes());
    context.consume(challenge.to_string().as_bytes());
    context.finalize().0
}

fn send(stream: &mut TcpStream, message: &[u8]) -> Result<(), Failure> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend(message);
    stream.write_all(&framed).map_err(|e| Failure::from_io(&e))
}

/// One handshake message: `u16` length, then that many bytes (at most 64 KiB by construction).
fn receive(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, Failure> {
    let mut len = [0u8; 2];
    read_exact_before(stream, &mut len, deadline)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_exact_before(stream, &mut message, deadline)?;
    Ok(message)
}

/// `'s'` and the status text.
pub fn parse_status(message: &[u8]) -> Result<String, String> {
    match message {
        [b's', status @ ..] if !status.is_empty() => Ok(String::from_utf8_lossy(status).into_owned()),
        [b's'] => Err("an empty status".into()),
        [] => Err("an empty message where the status belongs".into()),
        [tag, ..] => Err(format!("message {:?} where the status belongs", char::from(*tag))),
    }
}

/// `'N' flags u64, challenge u32, creation u32, nlen u16, name` (anything after the name is
/// ignored, as OTP does). An old-style `'n'` is a node older than OTP 23.
pub fn parse_challenge(message: &[u8]) -> Result<Challenge, String> {
    let body = match message {
        [b'N', body @ ..] => body,
        [b'n', ..] => return Err("the node speaks the pre-OTP 23 handshake, which OTP 25 dropped".into()),
        [] => return Err("an empty message where the challenge belongs".into()),
        [tag, ..] => return Err(format!("message {:?} where the challenge belongs", char::from(*tag))),
    };
    if body.len() < 18 {
        return Err("the challenge ends early".into());
    }
    let u32_at = |at: usize| u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    let flags = u64::from(u32_at(0)) << 32 | u64::from(u32_at(4));
    let nlen = usize::from(u16::from_be_bytes([body[16], body[17]]));
    let name = body.get(18..18 + nlen).ok_or("the challenge ends inside the node's name")?;
    if flags & HANDSHAKE_23 == 0 {
        return Err("the node does not speak handshake version 6".into());
    }
    Ok(Challenge {
        flags,
        challenge: u32_at(8),
        creation: u32_at(12),
        name: String::from_utf8_lossy(name).into_owned(),
    })
}

/// `'a'` and a 16-byte digest.
pub fn parse_ack(message: &[u8]) -> Result<[u8; 16], String> {
    match message {
        [b'a', digest @ ..] if digest.len() == 16 => {
            let mut out = [0u8; 16];
            out.copy_from_slice(digest);
            Ok(out)
        }
        [b'a', ..] => Err("the challenge ack is not 16 bytes".into()),
        _ => Err("no challenge ack where it belongs".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_md5_of_cookie_and_decimal_challenge() {
        // printf 'secret3735928559' | md5sum
        let expected = "c3939b31d7a913d82e2ace09247c7b41";
        let got: String = digest("secret", 0xdead_beef).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn we_are_hidden_and_speak_otp_25_and_26() {
        assert_eq!(OUR_FLAGS & 1, 0, "PUBLISHED would make us a visible node");
        let otp_25_mandatory =
            0x4 | 0x10 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x20000 | 0x40000 | 0x100_0000;
        assert_eq!(OUR_FLAGS & otp_25_mandatory, otp_25_mandatory);
        assert_eq!(OUR_FLAGS & (0x200_0000 | 0x4_0000_0000), 0x200_0000 | 0x4_0000_0000);
        // No atom cache (0x2000), no fragments (0x800000): every frame is a plain pass-through.
        assert_eq!(OUR_FLAGS & (0x2000 | 0x80_0000), 0);
    }

    #[test]
    fn handshake_messages() {
        assert_eq!(parse_status(b"sok").unwrap(), "ok");
        assert_eq!(parse_status(b"snot_allowed").unwrap(), "not_allowed");
        assert!(parse_status(b"s").is_err() && parse_status(b"").is_err() && parse_status(b"xok").is_err());

        let mut c = vec![b'N'];
        c.extend((OUR_FLAGS | 1).to_be_bytes());
        c.extend(7u32.to_be_bytes());
        c.extend(9u32.to_be_bytes());
        c.extend(5u16.to_be_bytes());
        c.extend(b"a@b.c");
        let parsed = parse_challenge(&c).unwrap();
        assert_eq!((parsed.challenge, parsed.creation, parsed.name.as_str()), (7, 9, "a@b.c"));
        assert!(parse_challenge(&c[..c.len() - 1]).is_err());
        assert!(parse_challenge(b"n\0\x05").is_err());

        assert!(parse_ack(&[b'a'; 17]).is_ok());
        assert!(parse_ack(&[b'a'; 16]).is_err());
    }
}
