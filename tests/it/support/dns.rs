//! A scripted DNS server on loopback (UDP and TCP on one port) for the answers no real server
//! gives: each query is answered with whatever the test's script makes of it, byte for byte; and
//! the pieces to hand-build those answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::BIN;

/// What the server does with one query (the message, without TCP's length): the answer to send,
/// or `None` to stay silent.
pub type Script = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// Serves until dropped.
pub struct ScriptedDns {
    pub addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ScriptedDns {
    /// On a free port of 127.0.0.1: `udp` answers the datagrams, `tcp` the queries over TCP.
    pub fn start(
        udp: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
        tcp: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> ScriptedDns {
        let (listener, socket) = loop {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
            if let Ok(socket) = UdpSocket::bind(listener.local_addr().expect("addr")) {
                break (listener, socket);
            }
        };
        ScriptedDns::serve(listener, socket, Arc::new(udp), Arc::new(tcp))
    }

    /// On `addr`, or `None` if it cannot be had.
    pub fn start_on(
        addr: SocketAddr,
        udp: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
        tcp: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Option<ScriptedDns> {
        let listener = TcpListener::bind(addr).ok()?;
        let socket = UdpSocket::bind(addr).ok()?;
        Some(ScriptedDns::serve(listener, socket, Arc::new(udp), Arc::new(tcp)))
    }

    fn serve(listener: TcpListener, socket: UdpSocket, udp: Arc<Script>, tcp: Arc<Script>) -> ScriptedDns {
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let (udp_queries, tcp_queries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

        socket.set_read_timeout(Some(Duration::from_millis(20))).expect("udp timeout");
        let (udp_stop, udp_count) = (stop.clone(), udp_queries.clone());
        let udp_thread = thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while !udp_stop.load(Ordering::SeqCst) {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else { continue };
                udp_count.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = udp(&buffer[..len]) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });

        listener.set_nonblocking(true).expect("nonblocking listener");
        let (tcp_stop, tcp_count) = (stop.clone(), tcp_queries.clone());
        let tcp_thread = thread::spawn(move || {
            while !tcp_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        tcp_count.fetch_add(1, Ordering::SeqCst);
                        serve_tcp(stream, &*tcp);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ScriptedDns { addr, udp_queries, tcp_queries, stop, threads: vec![udp_thread, tcp_thread] }
    }

    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn udp_queries(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst)
    }

    pub fn tcp_queries(&self) -> usize {
        self.tcp_queries.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One query over a TCP connection: the two-byte length, the message; the answer likewise.
fn serve_tcp(mut stream: TcpStream, script: &Script) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut length = [0u8; 2];
    if stream.read_exact(&mut length).is_err() {
        return;
    }
    let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
    if stream.read_exact(&mut query).is_err() {
        return;
    }
    if let Some(answer) = script(&query) {
        let length = u16::try_from(answer.len()).expect("a TCP answer fits in 65535 bytes");
        let _ = stream.write_all(&length.to_be_bytes());
        let _ = stream.write_all(&answer);
    }
}

/// The query type of a query (the last question's type: there is one).
pub fn qtype(query: &[u8]) -> u16 {
    u16::from_be_bytes([query[query.len() - 4], query[query.len() - 3]])
}

pub const A: u16 = 1;
pub const AAAA: u16 = 28;
pub const CNAME: u16 = 5;
/// Flags of an answer: QR, RD, RA; add TC (0x0200) or an rcode.
pub const ANSWER: u16 = 0x8180;
pub const TC: u16 = 0x0200;
/// A pointer to the question's name, right after the header.
pub const AT_QNAME: [u8; 2] = [0xC0, 12];

/// An answer to `query`: its id, `flags`, the counts given, and the question as asked (or, with
/// `question`, that question's wire bytes instead).
pub fn answer_header(query: &[u8], flags: u16, counts: [u16; 3], question: Option<&[u8]>) -> Vec<u8> {
    let mut packet = query[..2].to_vec();
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    for count in counts {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet.extend_from_slice(question.unwrap_or(&query[12..]));
    packet
}

/// A resource record of class IN, TTL 60.
pub fn record(packet: &mut Vec<u8>, owner: &[u8], rtype: u16, rdata: &[u8]) {
    packet.extend_from_slice(owner);
    packet.extend_from_slice(&rtype.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    packet.extend_from_slice(&u16::try_from(rdata.len()).expect("rdata length").to_be_bytes());
    packet.extend_from_slice(rdata);
}

/// A name in wire format, uncompressed.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|label| !label.is_empty()) {
        wire.push(u8::try_from(label.len()).expect("label length"));
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// rancher-boot in a private mount namespace whose /etc/resolv.conf is `resolv_conf`
/// (needs root and `unshare`, as the peers tests do).
pub fn with_resolv_conf(resolv_conf: &Path) -> Command {
    let mut command = Command::new("unshare");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("RANCHER") || name.starts_with("RELEASE_") || name == "ERL_AFLAGS" {
            command.env_remove(&*name);
        }
    }
    command.env("RANCHER_BOOT_LOG", "info");
    command.args(["--mount", "--propagation", "private", "sh", "-c"]);
    command.arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#);
    command.arg(resolv_conf).arg(BIN);
    command
}
