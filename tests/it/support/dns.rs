//! A scripted DNS server on loopback (UDP and TCP on one port) for the answers no real server
//! gives: each query is answered with whatever the test's script makes of it, byte for byte. The
//! pieces to hand-build those answers are the unit tests' own (`src/dns/packets.rs`, included
//! here), so that the repository has one packet builder.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::BIN;

#[path = "../../../src/dns/packets.rs"]
mod packets;
pub use packets::{A, AAAA, ANSWER, AT_QNAME, CNAME, TC, answer_header, qtype, record, wire_name};

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

/// rancher-boot in a private mount namespace whose /etc/resolv.conf is `resolv_conf`
/// (needs root and `unshare`, as the peers tests do).
pub fn with_resolv_conf(resolv_conf: &Path) -> Command {
    let mut command = Command::new("unshare");
    // The same clean slate as rancher_boot(), a runtime dir of its own among it: a boot's state
    // file in the shared default one would speak for this command's peers or print-env.
    super::clean_env(&mut command);
    command.args(["--mount", "--propagation", "private", "sh", "-c"]);
    command.arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#);
    command.arg(resolv_conf).arg(BIN);
    command
}
