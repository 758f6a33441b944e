//! What every integration test needs: the built binaries, a clean command, temp dirs, polling,
//! and an in-process metadata server whose every answer a test scripts (faults included). Its
//! HTTP (a thread per connection, the request head, the answer's head) is fake-rancher-metadata's
//! own, included from `src/bin/fake-rancher-metadata/http.rs`; what it answers is the script's.

#![allow(dead_code)]

pub mod dns;
pub mod fake_dist;
pub mod lan;
pub mod test;
pub mod vm;

/// The HTTP of the metadata test servers, the fake's own (`src/bin/fake-rancher-metadata`).
#[path = "../../../src/bin/fake-rancher-metadata/http.rs"]
mod http;

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rancher-boot");

/// The variables by which `--source auto` knows a platform (and DNS_CLUSTER_QUERY, which stands
/// in for --peer-query): a test machine inside one of them must not decide a test.
pub const PLATFORM_SIGNALS: [&str; 7] = [
    "FLY_APP_NAME",
    "FLY_PRIVATE_IP",
    "ECS_CONTAINER_METADATA_URI_V4",
    "ECS_CONTAINER_METADATA_URI",
    "NOMAD_ALLOC_ID",
    "KUBERNETES_SERVICE_HOST",
    "DNS_CLUSTER_QUERY",
];

/// rancher-boot with a clean slate: no RANCHER_* variable of the caller, nor a platform's
/// signal, leaks into a test.
pub fn rancher_boot() -> Command {
    let mut command = Command::new(BIN);
    clean_env(&mut command);
    command
}

/// Removes the caller's RANCHER_*, RELEASE_*, ERL_AFLAGS and platform signals from `command`'s
/// environment (it may run rancher-boot through a wrapper), and sets the log level to `info`.
pub fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("RANCHER") || name.starts_with("RELEASE_") || name == "ERL_AFLAGS" {
            command.env_remove(&*name);
        }
    }
    for name in PLATFORM_SIGNALS {
        command.env_remove(name);
    }
    command.env("RANCHER_BOOT_LOG", "info");
    // A runtime dir of this command's own: a boot's state file in a shared one would speak for
    // the next test's print-env or probe while that boot runs.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    command.env("RANCHER_BOOT_RUNTIME_DIR", std::env::temp_dir().join(format!("rbit-rt-{}-{n}", std::process::id())));
}

/// Runs the boot in a network namespace of its own (only loopback, down): no DNS query or packet
/// leaves this machine, and every name fails to resolve.
pub fn in_empty_netns(command: &Command) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped.arg("--net").arg(command.get_program()).args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    wrapped
}

/// Runs to completion and returns the output; stdin is closed.
#[track_caller]
pub fn run(command: &mut Command) -> Output {
    let output = command.stdin(std::process::Stdio::null()).output().expect("run rancher-boot");
    check_error_vocabulary(&output);
    output
}

/// Every error rancher-boot prints reads `rancher-boot: error: cannot WHAT: WHY` (docs/reference.md,
/// "Errors"). Checked on every output the tests read, so each error path a test reaches holds to it.
#[track_caller]
pub fn check_error_vocabulary(output: &Output) {
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        if let Some(rest) = line.strip_prefix("rancher-boot: error: ") {
            assert!(rest.starts_with("cannot "), "an error that does not start with \"cannot\": {line}");
        }
    }
}

/// Runs `command` with stdout and stderr in files under `dir` (a daemon such as epmd may inherit
/// them, so pipes could stay open forever), killing it if it is still running at `deadline`.
pub fn run_within(command: &mut Command, dir: &Path, deadline: Duration) -> Output {
    let (out_path, err_path) = (dir.join("child.stdout"), dir.join("child.stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn rancher-boot");
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {deadline:?}, killed\n--- stdout\n{}\n--- stderr\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: fs::read(&out_path).expect("read stdout"),
        stderr: fs::read(&err_path).expect("read stderr"),
    };
    check_error_vocabulary(&output);
    output
}

/// Writes a test file and returns its path.
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    fs::write(path, bytes).expect("write test file");
    path.to_path_buf()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
pub fn stderr(output: &Output) -> String {
    check_error_vocabulary(output);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_code(output: &Output, code: i32) {
    check_error_vocabulary(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A `self/container` answer as the 2016-07-29 API gives it, with pass-through fields.
pub fn container_json(ip: &str, service: &str) -> String {
    format!(
        r#"{{"create_index":1,"health_state":"healthy","hostname":"h1","ips":["{ip}"],"labels":{{}},"metadata_kind":"container","name":"demo-{service}-1","primary_ip":"{ip}","service_name":"{service}","stack_name":"demo","state":"running","uuid":"x"}}"#
    )
}

/// What the scripted server does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status with a body (Content-Type is always text/plain, as Rancher's server sends it).
    Status(u16, String),
    /// Read the request and never answer, keeping the connection open.
    Hang,
    /// Close the connection without a word.
    Close,
    /// Headers of a 200 with a Content-Length, then one byte a second.
    Trickle,
    /// A chunked 200 whose body never ends.
    Endless,
    /// Exactly these bytes.
    Raw(Vec<u8>),
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::Status(200, body.into())
    }
    pub fn not_found() -> Reply {
        Reply::Status(404, "{\"code\":404,\"message\":\"Not found\",\"type\":\"error\"}\n".into())
    }
}

type Script = dyn Fn(usize, &str) -> Reply + Send + Sync;

/// An HTTP server on 127.0.0.1 that answers request number N (from 1) for PATH with `script(N, PATH)`.
pub struct MetadataServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// When each request arrived, relative to the server's start.
    pub log: Arc<Mutex<Vec<(Instant, String, String)>>>,
}

impl MetadataServer {
    pub fn start(script: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> MetadataServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        Self::serve(listener, Arc::new(script))
    }

    /// Serves on an already bound listener (e.g. one bound before the server should answer).
    pub fn serve(listener: TcpListener, script: Arc<Script>) -> MetadataServer {
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (r, s, l) = (requests.clone(), stop.clone(), log.clone());
        let stopped = stop.clone();
        http::serve_each_on_a_thread(
            listener,
            move || stopped.load(Ordering::SeqCst),
            move |stream, _| handle(stream, &r, &s, &l, &*script),
        )
        .expect("accept thread");
        MetadataServer { addr, requests, stop, log }
    }

    /// The base URL, API version included.
    pub fn url(&self) -> String {
        format!("http://{}/2016-07-29", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The Accept header of every request so far.
    pub fn accept_headers(&self) -> Vec<String> {
        self.log.lock().expect("log").iter().map(|(_, _, accept)| accept.clone()).collect()
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

fn handle(
    stream: TcpStream,
    requests: &AtomicUsize,
    stop: &AtomicBool,
    log: &Mutex<Vec<(Instant, String, String)>>,
    script: &Script,
) {
    let Ok(request) = http::read_request(&mut BufReader::new(&stream)) else { return };
    let (path, accept) = (request.target, request.accept.unwrap_or_default());
    let number = requests.fetch_add(1, Ordering::SeqCst) + 1;
    log.lock().expect("log").push((Instant::now(), path.clone(), accept));
    let mut stream = stream;
    let _ = match script(number, &path) {
        Reply::Status(code, body) => {
            let mut answer = Vec::new();
            http::head(&mut answer, code, body.len(), "");
            answer.extend_from_slice(body.as_bytes());
            stream.write_all(&answer)
        }
        Reply::Raw(bytes) => stream.write_all(&bytes),
        Reply::Close => Ok(()),
        Reply::Hang => {
            let mut sink = [0u8; 64];
            stream.set_read_timeout(Some(Duration::from_millis(100))).ok();
            while !stop.load(Ordering::SeqCst) {
                match stream.read(&mut sink) {
                    Ok(0) => break,
                    _ => continue,
                }
            }
            Ok(())
        }
        Reply::Trickle => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 100000\r\n\r\n";
            let mut result = stream.write_all(head.as_bytes());
            while result.is_ok() && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_secs(1));
                result = stream.write_all(b" ");
            }
            result
        }
        Reply::Endless => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";
            let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
            let mut result = stream.write_all(head.as_bytes());
            let mut sent = 0usize;
            // Bounded so that a client that never stops reading cannot keep the test alive forever.
            while result.is_ok() && sent < 1 << 30 && !stop.load(Ordering::SeqCst) {
                result = stream.write_all(chunk.as_bytes());
                sent += 8192;
            }
            result
        }
    };
}

/// A loopback port that refuses connections until [`RefusingPort::listen`], held all along:
/// bound, not listening. (A port released and bound again later may be taken in between by
/// another test: that made fault_01 flaky under the parallel suite.)
pub struct RefusingPort {
    fd: std::os::fd::OwnedFd,
    pub addr: SocketAddr,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        use nix::libc;
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: plain socket calls on a descriptor this function owns from its creation.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let mut sin: libc::sockaddr_in = std::mem::zeroed();
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            assert_eq!(libc::bind(raw, (&raw const sin).cast(), len), 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = len;
            assert_eq!(libc::getsockname(raw, (&raw mut sin).cast(), &mut len), 0, "getsockname");
            let port = u16::from_be(sin.sin_port);
            RefusingPort { fd, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
        }
    }

    /// Starts listening on the same port: from now on it accepts.
    pub fn listen(self) -> TcpListener {
        use std::os::fd::AsRawFd;
        // SAFETY: listen on the descriptor this value owns.
        let listening = unsafe { nix::libc::listen(self.fd.as_raw_fd(), 128) };
        assert_eq!(listening, 0, "listen: {}", std::io::Error::last_os_error());
        TcpListener::from(self.fd)
    }
}

/// A loopback port with nothing listening (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}
