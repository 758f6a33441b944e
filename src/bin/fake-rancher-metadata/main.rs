//! fake-rancher-metadata: a stand-in for Rancher 1.x's metadata service (docs/spec.md section 11).
//!
//! It lets images built for Rancher run on plain Docker or a laptop, and it is the metadata
//! service of this project's integration tests and end-to-end demo. The program reads like a
//! script: parse the flags, load the answers, block the stop signals and give them to one
//! thread, bind, then serve each connection on a thread of its own. HTTP is the minimum a
//! metadata client needs (one request per connection, `Connection: close`), hand-written on std
//! so the binary stays small and static.
//!
//! This file owns the flags, the signals and what a request is answered (the fault knobs
//! included). `http.rs` owns the HTTP, shared with the integration tests' scripted server;
//! `render.rs` the real server's rendering rules; `source.rs` the per-caller answers.

mod http;
mod render;
mod source;

use std::io::{BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};

use rancher_boot::cli::parse_duration;
use render::{Answer, Format};
use source::{Callers, Mirror, Source, VERSIONS};

const ANSWERS_HELP: &str = "\
ANSWERS FILE (--answers):
  A JSON object keyed by the caller's IP address; each value is that caller's `self` object.
  The key \"default\" answers callers that have no entry of their own; without it they get 404.
    {
      \"10.42.0.5\": {
        \"container\": {\"primary_ip\": \"10.42.0.5\", \"name\": \"demo-hello-1\",
                      \"service_name\": \"hello\", \"stack_name\": \"demo\", \"ips\": [\"10.42.0.5\"],
                      \"state\": \"running\", \"health_state\": \"healthy\", \"labels\": {}},
        \"service\":   {\"name\": \"hello\", \"scale\": 1, \"containers\": [{\"name\": \"demo-hello-1\",
                      \"primary_ip\": \"10.42.0.5\", \"state\": \"running\", \"health_state\": \"healthy\"}]},
        \"stack\":     {\"name\": \"demo\", \"services\": [\"hello\"]}
      }
    }
  SIGHUP reloads the file.

MIRROR MODE (--mirror --service NAME):
  Any caller gets a container whose primary_ip is its own source address, named
  STACK-SERVICE-N (N in order of first request), running and healthy. self/service lists the
  callers seen so far, or with --resolve the addresses that the service name (or NAME) resolves to.

URLS:
  /                                   the API versions
  /VERSION[/self/container[/KEY...]]  VERSION: 2015-07-25, 2015-12-19, 2016-07-29, latest
  /VERSION/self/service[/KEY...], /VERSION/self/stack[/KEY...], /VERSION/version
  Text by default, compact JSON with `Accept: application/json`; 2016-07-29 and latest
  lower-case names; in 2015-07-25 a service's containers are names.

docs/faults.md:
  --not-found-first N and --not-found-for DURATION answer 404 to a caller (counted per source
  address) before it gets real answers; --delay DURATION slows every answer. DURATION is
  like 250ms, 3s, 1.5s, 2m; a bare number is seconds.";

/// A stand-in for Rancher 1.x's metadata service: answers `self` by the caller's source IP.
#[derive(Parser, Debug)]
#[command(name = "fake-rancher-metadata", version, after_help = ANSWERS_HELP)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (the bound address is logged first).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
    listen: SocketAddr,

    /// Answer from FILE, a JSON object keyed by caller IP (see ANSWERS FILE below).
    #[arg(long, value_name = "FILE", required_unless_present = "mirror", conflicts_with = "mirror")]
    answers: Option<PathBuf>,

    /// Answer any caller with a container of --service whose primary_ip is its own address.
    #[arg(long, requires = "service")]
    mirror: bool,

    /// Service name in mirror mode.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,

    /// Stack name in mirror mode.
    #[arg(long, value_name = "NAME", default_value = "default")]
    stack: String,

    /// In mirror mode, list in self/service the addresses that NAME (default: the service
    /// name) resolves to, instead of the callers seen so far.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", requires = "mirror")]
    resolve: Option<String>,

    /// Answer 404 to the first N requests of each caller.
    #[arg(long, value_name = "N", default_value_t = 0)]
    not_found_first: u64,

    /// Answer 404 to each caller until DURATION after its first request.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    not_found_for: Option<Duration>,

    /// Wait DURATION before each answer.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    delay: Option<Duration>,
}

/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 512;

#[derive(Debug)]
struct Server {
    source: RwLock<Source>,
    answers_path: Option<PathBuf>,
    callers: Mutex<Callers>,
    not_found_first: u64,
    not_found_for: Option<Duration>,
    delay: Option<Duration>,
}

fn main() {
    let cli = Cli::parse();

    let source = match (&cli.answers, &cli.service) {
        (Some(path), _) => match source::load_answers(path) {
            Ok(answers) => Source::Answers(answers),
            Err(e) => fail(&e),
        },
        (None, Some(service)) => Source::Mirror(Mirror {
            service: service.clone(),
            stack: cli.stack.clone(),
            resolve: cli.resolve.clone().map(|name| if name.is_empty() { service.clone() } else { name }),
        }),
        (None, None) => fail("--answers FILE or --mirror --service NAME is required"),
    };
    let server = Arc::new(Server {
        source: RwLock::new(source),
        answers_path: cli.answers.clone(),
        callers: Mutex::new(Callers::default()),
        not_found_first: cli.not_found_first,
        not_found_for: cli.not_found_for,
        delay: cli.delay,
    });

    // Block the stop and reload signals before any thread exists, so that every thread
    // inherits the mask and only the signal thread receives them (with sigwait). This also
    // works as PID 1, where signals without a handler would be ignored.
    let signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
    if let Err(e) = signals.thread_block() {
        fail(&format!("failed to block signals: {e}"));
    }
    let listener = match TcpListener::bind(cli.listen) {
        Ok(listener) => listener,
        Err(e) => fail(&format!("failed to listen on {}: {e}", cli.listen)),
    };
    let local = listener.local_addr().unwrap_or(cli.listen);
    eprintln!("fake-rancher-metadata: listening on {local}");

    // Connections being served; over MAX_CONNECTIONS a connection is closed at once.
    let active = AtomicUsize::new(0);
    let serving = Arc::clone(&server);
    let accepting = http::serve_each_on_a_thread(
        listener,
        || false,
        move |stream, peer| {
            if active.fetch_add(1, Ordering::SeqCst) < MAX_CONNECTIONS {
                serve(&serving, &stream, peer);
            }
            active.fetch_sub(1, Ordering::SeqCst);
        },
    );
    if accepting.is_err() {
        fail("failed to start a thread");
    }
    wait_for_signals(&signals, &server);
}

/// Size of a connection's request buffer (that of a `BufReader`).
const READ_BUFFER: usize = 8 * 1024;

fn fail(message: &str) -> ! {
    eprintln!("fake-rancher-metadata: error: {message}");
    std::process::exit(2);
}

/// SIGTERM and SIGINT stop the server with exit 0; SIGHUP reloads the answers file.
fn wait_for_signals(signals: &SigSet, server: &Server) {
    loop {
        match signals.wait() {
            Ok(Signal::SIGHUP) => reload(server),
            Ok(signal) => {
                eprintln!("fake-rancher-metadata: stopping on {}", signal.as_str());
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("fake-rancher-metadata: error: failed to wait for signals: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn reload(server: &Server) {
    let Some(path) = &server.answers_path else { return };
    match source::load_answers(path) {
        Ok(answers) => {
            *server.source.write().unwrap_or_else(|e| e.into_inner()) = Source::Answers(answers);
            eprintln!("fake-rancher-metadata: reloaded {}", path.display());
        }
        Err(e) => eprintln!("fake-rancher-metadata: error: reload failed, keeping the old answers: {e}"),
    }
}

/// One connection: one request, one answer, one log line.
fn serve(server: &Server, stream: &TcpStream, peer: SocketAddr) {
    let caller = peer.ip().to_canonical();
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);

    let (method, target, answer) = match http::read_request(&mut reader) {
        Ok(request) => {
            let format = render::negotiate(request.accept.as_deref());
            let answer = respond(server, caller, &request.method, &request.target, format);
            (request.method, request.target, answer)
        }
        Err(http::RequestError::Closed) => return,
        Err(http::RequestError::Bad(status, message)) => {
            ("-".to_string(), "-".to_string(), Answer::error(Format::Text, status, message))
        }
    };
    // Logged before the answer is sent, so that a client that has its answer finds the line;
    // control characters from the client never reach the terminal.
    let printable = |s: &str| s.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>();
    // One write, so that lines of concurrent requests never mix.
    let line =
        format!("fake-rancher-metadata: {caller} {} {} {}\n", printable(&method), printable(&target), answer.status);
    eprint!("{line}");
    // Head and body in one write: one segment for the client to wait for.
    let mut writer = stream;
    let mut output = Vec::new();
    encode_answer(&mut output, &answer, method == "HEAD");
    let _ = writer.write_all(&output);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn respond(server: &Server, caller: IpAddr, method: &str, target: &str, format: Format) -> Answer {
    if method != "GET" && method != "HEAD" {
        return Answer::error(format, 405, "Method Not Allowed");
    }
    if let Some(delay) = server.delay {
        std::thread::sleep(delay);
    }

    // The path without the query (`?wait=true` long polls are answered at once) and without
    // an absolute-form `http://host` prefix.
    let path = target.split(['?', '#']).next().unwrap_or("");
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    let path = path.trim_start_matches('/').trim_end_matches('/');
    if path.is_empty() {
        let versions: serde_json::Map<String, serde_json::Value> =
            VERSIONS.iter().map(|v| (v.to_string(), format!("/{v}").into())).collect();
        return Answer::ok(render::render(&versions.into(), format));
    }

    // Only metadata requests count for the fault knobs (and make a caller "seen").
    let record = server.callers.lock().unwrap_or_else(|e| e.into_inner()).record(caller, Instant::now());
    let in_fault = record.requests <= server.not_found_first
        || server.not_found_for.zip(record.first).is_some_and(|(window, first)| first.elapsed() < window);
    if in_fault {
        return Answer::not_found(format);
    }

    let mut segments = path.split('/');
    let version = segments.next().unwrap_or("");
    if !VERSIONS.contains(&version) {
        return Answer::error(format, 404, "Invalid version");
    }
    let Some(keys) = segments.map(render::query_unescape).collect::<Option<Vec<String>>>() else {
        return Answer::error(format, 400, "invalid URL escape");
    };
    let source = server.source.read().unwrap_or_else(|e| e.into_inner());
    let tree = source.tree(version, caller, &server.callers);
    match tree.as_deref().and_then(|tree| render::lookup(tree, &keys)) {
        Some(value) => Answer::ok(render::render(value, format)),
        None => Answer::not_found(format),
    }
}

/// The whole HTTP answer, head and (unless `head_only`) body, into `out` (emptied first).
fn encode_answer(out: &mut Vec<u8>, answer: &Answer, head_only: bool) {
    let extra =
        if answer.status == 200 { "Access-Control-Allow-Origin: *\r\n" } else { "X-Content-Type-Options: nosniff\r\n" };
    out.clear();
    http::head(out, answer.status, answer.body.len(), extra);
    if !head_only {
        out.extend_from_slice(answer.body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use http::{MAX_REQUEST, RequestError, read_request};

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn request_head_is_parsed_and_bounded() {
        let mut ok = &b"GET /latest/self HTTP/1.1\r\nHost: x\r\naccept: application/json\r\n\r\n"[..];
        let request = read_request(&mut ok).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((request.method.as_str(), request.target.as_str()), ("GET", "/latest/self"));
        assert_eq!(request.accept.as_deref(), Some("application/json"));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_REQUEST));
        assert!(matches!(read_request(&mut huge.as_bytes()), Err(RequestError::Bad(431, _))));
        assert!(matches!(read_request(&mut &b"nonsense\r\n\r\n"[..]), Err(RequestError::Bad(400, _))));
        assert!(matches!(read_request(&mut &b""[..]), Err(RequestError::Closed)));
    }

    #[test]
    fn the_answer_is_one_buffer() {
        let mut out = b"left over".to_vec();
        encode_answer(&mut out, &Answer::ok("10.42.0.5".into()), false);
        let expected = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\
                        Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n10.42.0.5";
        assert_eq!(String::from_utf8_lossy(&out), expected);
        encode_answer(&mut out, &Answer::not_found(Format::Text), true);
        let expected = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\
                        X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }
}
