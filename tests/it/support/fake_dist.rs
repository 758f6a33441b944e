//! A hostile EPMD and a hostile node, in-process on loopback: each connection is handed to a
//! script that may answer well, answer garbage, truncate, flood, or stall. The EPMD answers every
//! `PORT_PLEASE2` with the fake node's port, so a probe pointed at it (`ERL_EPMD_PORT`) goes on
//! to the node.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rancher_boot::dist::handshake;

pub type Script = dyn Fn(&mut TcpStream) + Send + Sync;

/// A listener on 127.0.0.1 whose connections each run `script` on a thread of their own.
#[derive(Debug)]
pub struct Fake {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Fake {
    pub fn start(script: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let stopped = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let script = script.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    script(&mut stream);
                });
            }
        });
        Fake { port, stop }
    }

    /// An EPMD that says `alive` listens on `node_port`, for any name.
    pub fn epmd_for(node_port: u16) -> Fake {
        Fake::start(move |stream| {
            let _ = read_request(stream);
            let mut answer = vec![119, 0];
            answer.extend(node_port.to_be_bytes());
            answer.extend([77, 0, 0, 6, 0, 5, 0, 4]);
            answer.extend(b"fake");
            answer.extend([0, 0]);
            let _ = stream.write_all(&answer);
        })
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One `u16`-length request or handshake message.
pub fn read_request(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// A handshake message with its `u16` length.
pub fn message(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// The node's challenge for `name`, with `challenge`.
pub fn challenge(name: &str, challenge: u32) -> Vec<u8> {
    let mut body = vec![b'N'];
    body.extend((handshake::OUR_FLAGS | 1).to_be_bytes());
    body.extend(challenge.to_be_bytes());
    body.extend(1u32.to_be_bytes());
    body.extend((name.len() as u16).to_be_bytes());
    body.extend(name.as_bytes());
    message(&body)
}

/// Plays a node named `name` with `cookie` through the whole handshake, honestly; returns
/// whether the prober's digest was right.
pub fn honest_handshake(stream: &mut TcpStream, name: &str, cookie: &str) -> bool {
    let Ok(_name) = read_request(stream) else { return false };
    let _ = stream.write_all(&message(b"sok"));
    let _ = stream.write_all(&challenge(name, 4711));
    let Ok(reply) = read_request(stream) else { return false };
    if reply.len() != 21 || reply[5..] != handshake::digest(cookie, 4711) {
        return false;
    }
    let theirs = u32::from_be_bytes([reply[1], reply[2], reply[3], reply[4]]);
    let mut ack = vec![b'a'];
    ack.extend(handshake::digest(cookie, theirs));
    stream.write_all(&message(&ack)).is_ok()
}
