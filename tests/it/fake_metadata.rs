//! fake-rancher-metadata, run as a program: the real server's rendering rules, answers by
//! source address (loopback callers bind 127.0.0.X so that one server sees several callers),
//! the fault knobs, the request log, and a clean stop on SIGTERM and SIGINT.
//!
//! The HTTP client is a few lines of raw TCP on purpose: these tests check bytes (no trailing
//! newline, the Content-Type of a JSON answer), which a client library would smooth over.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_fake-rancher-metadata");
/// Deadline for anything that should take milliseconds; generous for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// A running server on a free loopback port; killed when dropped.
struct Fake {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(args: &[&str]) -> Fake {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fake-rancher-metadata");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        // The first line names the bound address: that is also the readiness signal.
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let addr = first
            .strip_prefix("fake-rancher-metadata: listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        Fake { child, addr, log }
    }

    /// GET `path` from 127.0.0.1.
    fn get(&self, path: &str) -> Response {
        self.request(Ipv4Addr::LOCALHOST, "GET", path, None)
    }

    /// GET `path` with `Accept: application/json`.
    fn get_json(&self, path: &str) -> Response {
        self.request(Ipv4Addr::LOCALHOST, "GET", path, Some("application/json"))
    }

    fn request(&self, from: Ipv4Addr, method: &str, path: &str, accept: Option<&str>) -> Response {
        let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: rancher-metadata\r\n{accept}Connection: close\r\n\r\n");
        exchange(connect_from(from, self.addr), head.as_bytes())
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send signal");
    }

    /// Poll until the server exits (never a fixed sleep).
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "server did not stop within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Poll until the log holds a line containing `needle`.
    fn wait_log(&self, needle: &str) -> Vec<String> {
        let start = Instant::now();
        loop {
            let log = self.log.lock().expect("log lock").clone();
            if log.iter().any(|l| l.contains(needle)) {
                return log;
            }
            assert!(start.elapsed() < DEADLINE, "no log line with {needle:?} in {log:#?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Status and body, the pair most assertions are about.
    fn pair(&self) -> (u16, &str) {
        (self.status, self.body.as_str())
    }
}

/// A TCP connection whose source address is `from` (any 127.0.0.X works on Linux loopback).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let SocketAddr::V4(to) = to else { panic!("IPv4 listener expected") };
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(from, 0))).expect("bind source address");
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).expect("connect");
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    stream
}

/// Send `request`, read to EOF, split head and body.
fn exchange(mut stream: TcpStream, request: &[u8]) -> Response {
    stream.write_all(request).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("content-length");
    assert_eq!(length, body.len(), "content-length matches the body");
    Response { status, headers, body: body.to_string() }
}

fn answers_file(json: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(json.as_bytes()).expect("write answers");
    file
}

const ANSWERS: &str = r#"{
  "127.0.0.2": {
    "container": {"primary_ip": "10.42.0.5", "name": "Demo-Hello-1", "service_name": "Hello",
                  "stack_name": "Demo", "ips": ["10.42.0.5", "10.42.0.6"], "labels": {"a b": "c"},
                  "health_check": null, "start_count": 3, "cpu": 0.25, "system": false,
                  "metadata_kind": "container", "note": "<&>"},
    "service": {"name": "Hello", "scale": 2, "containers": [
                  {"name": "Demo-Hello-1", "primary_ip": "10.42.0.5", "state": "running"},
                  {"name": "Demo-Hello-2", "primary_ip": "10.42.0.7", "state": "starting"}]},
    "stack": {"name": "Demo", "services": ["Hello"]}
  },
  "127.0.0.3": {"container": {"primary_ip": "10.42.0.7", "name": "demo-hello-2"}}
}"#;

#[test]
fn text_rendering_follows_the_real_server() {
    let file = answers_file(ANSWERS);
    let fake = Fake::start(&["--answers", file.path().to_str().expect("UTF-8 path")]);
    let from = Ipv4Addr::new(127, 0, 0, 2);
    let get = |path: &str| fake.request(from, "GET", path, None);

    // Scalars: no trailing newline.
    assert_eq!(get("/2016-07-29/self/container/primary_ip").pair(), (200, "10.42.0.5"));
    assert_eq!(get("/latest/self/container/start_count").pair(), (200, "3"));
    assert_eq!(get("/latest/self/container/cpu").pair(), (200, "0.25"));
    assert_eq!(get("/latest/self/container/system").pair(), (200, "false"));
    // JSON null: 200 with an empty body.
    assert_eq!(get("/latest/self/container/health_check").pair(), (200, ""));
    // A list shows its indices; a list of named maps shows index=name.
    assert_eq!(get("/latest/self/container/ips").pair(), (200, "0\n1\n"));
    assert_eq!(get("/latest/self/container/ips/1").pair(), (200, "10.42.0.6"));
    assert_eq!(get("/latest/self/service/containers").pair(), (200, "0=demo-hello-1\n1=demo-hello-2\n"));
    assert_eq!(get("/latest/self/service/containers/demo-hello-2/state").pair(), (200, "starting"));
    // A map shows its sorted keys, with a slash for maps and lists, escaped like a query.
    assert_eq!(get("/latest/self/container/labels").pair(), (200, "a+b\n"));
    assert_eq!(get("/latest/self/container/labels/a%20b").pair(), (200, "c"));
    assert_eq!(get("/latest/self").pair(), (200, "container/\nservice/\nstack/\n"));
    assert_eq!(get("/latest/self/stack/").pair(), (200, "name\nservices/\n"));
    // The version root, and the list of versions.
    assert_eq!(get("/latest").pair(), (200, "self/\nversion\n"));
    assert_eq!(get("/").pair(), (200, "2015-07-25\n2015-12-19\n2016-07-29\nlatest\n"));
    // `*/*` and an unknown type get text.
    let any = fake.request(from, "GET", "/latest/self/container/name", Some("*/*"));
    assert_eq!(any.pair(), (200, "demo-hello-1"));
    // Missing keys and versions: 404 with Go's http.Error body.
    assert_eq!(get("/latest/self/container/nope").pair(), (404, "Not found\n"));
    assert_eq!(get("/latest/self/container/ips/2").pair(), (404, "Not found\n"));
    assert_eq!(get("/latest/self/container/name/deeper").pair(), (404, "Not found\n"));
    assert_eq!(get("/2099-01-01/self/container").pair(), (404, "Invalid version\n"));
    // HEAD: the head of the GET, no body.
    let mut stream = connect_from(from, fake.addr);
    stream.write_all(b"HEAD /latest/self/container/name HTTP/1.1\r\n\r\n").expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 200 ") && raw.ends_with("\r\n\r\n"), "{raw:?}");
    assert!(raw.contains("Content-Length: 12\r\n"), "{raw:?}");
}

#[test]
fn json_rendering_and_content_type() {
    let file = answers_file(ANSWERS);
    let fake = Fake::start(&["--answers", file.path().to_str().expect("UTF-8 path")]);
    let from = Ipv4Addr::new(127, 0, 0, 2);
    let json = |path: &str| fake.request(from, "GET", path, Some("application/json"));

    let container = json("/latest/self/container");
    assert_eq!(container.status, 200);
    // Every answer says text/plain, JSON included.
    assert_eq!(container.header("Content-Type"), Some("text/plain; charset=utf-8"));
    // Compact, sorted, HTML-escaped like Go's json.Marshal, no trailing newline.
    assert!(container.body.starts_with(r#"{"cpu":0.25,"health_check":null,"ips":["10.42.0.5","10.42.0.6"],"#));
    assert!(container.body.ends_with(r#""note":"\u003c\u0026\u003e","primary_ip":"10.42.0.5","service_name":"hello","stack_name":"demo","start_count":3,"system":false}"#), "{}", container.body);
    assert_eq!(json("/latest/self/container/ips").pair(), (200, r#"["10.42.0.5","10.42.0.6"]"#));
    assert_eq!(json("/latest/self/container/primary_ip").pair(), (200, r#""10.42.0.5""#));
    assert_eq!(json("/latest/self/container/health_check").pair(), (200, "null"));
    let missing = json("/latest/self/container/nope");
    assert_eq!(missing.pair(), (404, "{\"code\":404,\"message\":\"Not found\",\"type\":\"error\"}\n"));
    assert_eq!(missing.header("Content-Type"), Some("text/plain; charset=utf-8"));
    // q-values: JSON preferred over text.
    let preferred = fake.request(from, "GET", "/latest/self/stack/name", Some("text/plain;q=0.5, application/json"));
    assert_eq!(preferred.pair(), (200, r#""demo""#));
}

#[test]
fn self_is_answered_by_source_address_and_version() {
    let file = answers_file(ANSWERS);
    let fake = Fake::start(&["--answers", file.path().to_str().expect("UTF-8 path")]);
    let ask = |last: u8, path: &str| fake.request(Ipv4Addr::new(127, 0, 0, last), "GET", path, None);

    assert_eq!(ask(2, "/latest/self/container/primary_ip").pair(), (200, "10.42.0.5"));
    assert_eq!(ask(3, "/latest/self/container/primary_ip").pair(), (200, "10.42.0.7"));
    // A caller that matches no entry (and no "default") gets 404 for good.
    assert_eq!(ask(4, "/latest/self/container").pair(), (404, "Not found\n"));
    assert_eq!(ask(4, "/latest/self/container").pair(), (404, "Not found\n"));
    // 2016-07-29 and latest lower-case names; the older versions keep them.
    assert_eq!(ask(2, "/2016-07-29/self/container/service_name").pair(), (200, "hello"));
    assert_eq!(ask(2, "/2015-12-19/self/container/name").pair(), (200, "Demo-Hello-1"));
    // 2015-07-25: a service's containers are names.
    assert_eq!(
        fake.request(
            Ipv4Addr::new(127, 0, 0, 2),
            "GET",
            "/2015-07-25/self/service/containers",
            Some("application/json")
        )
        .pair(),
        (200, r#"["Demo-Hello-1","Demo-Hello-2"]"#)
    );
}

#[test]
fn mirror_mode_answers_each_caller_with_its_own_address() {
    let fake = Fake::start(&["--mirror", "--service", "hello", "--stack", "demo"]);
    let ask =
        |last: u8, path: &str| fake.request(Ipv4Addr::new(127, 0, 0, last), "GET", path, Some("application/json"));

    let first = ask(5, "/2016-07-29/self/container");
    let container: serde_json::Value = serde_json::from_str(&first.body).expect("JSON container");
    assert_eq!(container["primary_ip"], "127.0.0.5");
    assert_eq!(container["ips"], serde_json::json!(["127.0.0.5"]));
    assert_eq!(container["name"], "demo-hello-1");
    assert_eq!(container["service_name"], "hello");
    assert_eq!(container["stack_name"], "demo");
    assert_eq!(container["state"], "running");
    assert_eq!(container["health_state"], "healthy");
    assert_eq!(container["metadata_kind"], "container");
    assert_eq!(ask(6, "/latest/self/container/primary_ip").body, r#""127.0.0.6""#);
    assert_eq!(ask(6, "/latest/self/container/name").body, r#""demo-hello-2""#);

    // The service lists the callers seen so far, in order of appearance.
    let service: serde_json::Value = serde_json::from_str(&ask(5, "/latest/self/service").body).expect("JSON service");
    assert_eq!(service["name"], "hello");
    let ips: Vec<&str> =
        service["containers"].as_array().expect("containers").iter().filter_map(|c| c["primary_ip"].as_str()).collect();
    assert_eq!(ips, ["127.0.0.5", "127.0.0.6"]);
    assert_eq!(fake.get("/latest/self/stack/name").pair(), (200, "demo"));
}

#[test]
fn mirror_resolve_lists_the_addresses_of_a_name() {
    let fake = Fake::start(&["--mirror", "--service", "hello", "--resolve", "localhost"]);
    let service: serde_json::Value =
        serde_json::from_str(&fake.get_json("/latest/self/service").body).expect("JSON service");
    let ips: Vec<&str> =
        service["containers"].as_array().expect("containers").iter().filter_map(|c| c["primary_ip"].as_str()).collect();
    assert!(ips.contains(&"127.0.0.1"), "{ips:?}");
    // The caller itself is still answered by its own address.
    let own = fake.request(Ipv4Addr::new(127, 0, 0, 11), "GET", "/latest/self/container/primary_ip", None);
    assert_eq!(own.pair(), (200, "127.0.0.11"));
}

#[test]
fn not_found_first_counts_per_caller() {
    let fake = Fake::start(&["--mirror", "--service", "hello", "--not-found-first", "2"]);
    let ask = |last: u8| fake.request(Ipv4Addr::new(127, 0, 0, last), "GET", "/latest/self/container/primary_ip", None);

    assert_eq!(ask(7).pair(), (404, "Not found\n"));
    assert_eq!(ask(7).pair(), (404, "Not found\n"));
    assert_eq!(ask(7).pair(), (200, "127.0.0.7"));
    // Another caller has its own count.
    assert_eq!(ask(8).status, 404);
    assert_eq!(ask(7).status, 200);
    assert_eq!(ask(8).status, 404);
    assert_eq!(ask(8).pair(), (200, "127.0.0.8"));
}

#[test]
fn not_found_for_a_while_after_the_first_request() {
    let window = Duration::from_millis(700);
    let fake = Fake::start(&["--mirror", "--service", "hello", "--not-found-for", "700ms"]);
    let start = Instant::now();
    let mut not_found = 0;
    loop {
        let response = fake.get("/latest/self/container/primary_ip");
        if response.status == 200 {
            assert_eq!(response.body, "127.0.0.1");
            break;
        }
        assert_eq!(response.status, 404);
        not_found += 1;
        assert!(start.elapsed() < DEADLINE, "still 404 after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(start.elapsed() >= window, "answered after {:?}, before the window", start.elapsed());
    assert!(not_found >= 1);
    // The window counts from each caller's own first request.
    let other = fake.request(Ipv4Addr::new(127, 0, 0, 9), "GET", "/latest/self/container/primary_ip", None);
    assert_eq!(other.status, 404);
}

#[test]
fn delay_slows_every_answer() {
    let fake = Fake::start(&["--mirror", "--service", "hello", "--delay", "300ms"]);
    let start = Instant::now();
    assert_eq!(fake.get("/latest/self/service/name").pair(), (200, "hello"));
    assert!(start.elapsed() >= Duration::from_millis(300), "answered after {:?}", start.elapsed());
}

#[test]
fn each_request_is_logged_and_sigterm_stops_with_zero() {
    let mut fake = Fake::start(&["--mirror", "--service", "hello"]);
    fake.request(Ipv4Addr::new(127, 0, 0, 10), "GET", "/latest/self/container/nope", None);
    fake.get_json("/latest/self/service/name");
    let log = fake.wait_log("GET /latest/self/service/name 200");
    // One line per request, in the order the answers were sent.
    let lines: Vec<&str> = log.iter().map(String::as_str).collect();
    assert_eq!(
        lines,
        [
            "fake-rancher-metadata: 127.0.0.10 GET /latest/self/container/nope 404",
            "fake-rancher-metadata: 127.0.0.1 GET /latest/self/service/name 200"
        ]
    );
    fake.signal(Signal::SIGTERM);
    assert_eq!(fake.wait_exit().code(), Some(0));
}

#[test]
fn sigint_stops_with_zero() {
    let mut fake = Fake::start(&["--mirror", "--service", "hello"]);
    fake.signal(Signal::SIGINT);
    assert_eq!(fake.wait_exit().code(), Some(0));
}

#[test]
fn bad_requests_are_refused_and_the_server_lives_on() {
    let fake = Fake::start(&["--mirror", "--service", "hello"]);
    let post = fake.request(Ipv4Addr::LOCALHOST, "POST", "/latest/self/container", None);
    assert_eq!(post.status, 405);
    let garbage = exchange(connect_from(Ipv4Addr::LOCALHOST, fake.addr), b"hello\r\n\r\n");
    assert_eq!(garbage.status, 400);
    let huge = format!("GET / HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "a".repeat(64 * 1024));
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, fake.addr);
    // The server may answer and close before it reads everything: a failed write is fine.
    let _ = stream.write_all(huge.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 431 "), "{raw:?}");
    // A client that connects and sends nothing does not block others.
    let _idle = connect_from(Ipv4Addr::LOCALHOST, fake.addr);
    assert_eq!(fake.get("/latest/self/container/primary_ip").pair(), (200, "127.0.0.1"));
}

#[test]
fn sighup_reloads_the_answers_file() {
    let file = answers_file(r#"{"default": {"container": {"name": "before"}}}"#);
    let fake = Fake::start(&["--answers", file.path().to_str().expect("UTF-8 path")]);
    assert_eq!(fake.get("/latest/self/container/name").pair(), (200, "before"));
    std::fs::write(file.path(), r#"{"default": {"container": {"name": "after"}}}"#).expect("rewrite answers");
    fake.signal(Signal::SIGHUP);
    fake.wait_log("reloaded");
    assert_eq!(fake.get("/latest/self/container/name").pair(), (200, "after"));
}

#[test]
fn a_bad_answers_file_or_no_mode_is_refused() {
    let file = answers_file(r#"{"not-an-ip": {}}"#);
    let output =
        Command::new(BIN).args(["--listen", "127.0.0.1:0", "--answers"]).arg(file.path()).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"not-an-ip\" is neither an IP address"), "{stderr}");

    let output = Command::new(BIN).args(["--listen", "127.0.0.1:0"]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(BIN).args(["--mirror"]).output().expect("run");
    assert_eq!(output.status.code(), Some(2), "--mirror needs --service");
}

#[test]
fn slow_and_idle_clients_do_not_hold_up_the_others() {
    // Each answer waits a second: fifty clients at once must be served side by side (one after
    // the other would take fifty seconds), also while idle clients hold connections open.
    let fake = Fake::start(&["--mirror", "--service", "hello", "--delay", "1s"]);
    let _idle: Vec<TcpStream> = (0..10).map(|_| connect_from(Ipv4Addr::LOCALHOST, fake.addr)).collect();
    let start = Instant::now();
    let head = b"GET /latest/self/container/primary_ip HTTP/1.1\r\nHost: rancher-metadata\r\n\r\n";
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let clients: Vec<_> = (1..=50)
            .map(|i| scope.spawn(move || exchange(connect_from(Ipv4Addr::new(127, 0, 1, i), fake.addr), head)))
            .collect();
        clients.into_iter().map(|c| c.join().expect("client thread")).collect()
    });
    let elapsed = start.elapsed();
    for (i, answer) in (1..).zip(&answers) {
        assert_eq!(answer.pair(), (200, format!("127.0.1.{i}").as_str()));
    }
    assert!(elapsed >= Duration::from_secs(1), "answered after {elapsed:?}, before the delay");
    assert!(elapsed < Duration::from_secs(15), "50 delayed answers took {elapsed:?}: served one by one?");
}
