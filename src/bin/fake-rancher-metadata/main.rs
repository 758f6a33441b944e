//! fake-rancher-metadata: a stand-in for Rancher 1.x's metadata service (SPEC section 11).
//!
//! It lets images built for Rancher run on plain Docker or a laptop, and it is the metadata
//! service of this project's integration tests and end-to-end demo. The program reads like a
//! script: parse the flags, load the answers, block the stop signals and give them to one
//! thread, bind, then serve each connection on its own thread. HTTP is the minimum a metadata
//! client needs (one request per connection, `Connection: close`), hand-written on std so the
//! binary stays small and static.
//!
//! `render.rs` owns the real server's rendering rules, `source.rs` the per-caller answers.

mod render;
mod source;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};

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

FAULTS:
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

/// Largest request head (request line and headers) accepted; a metadata GET is tiny.
const MAX_REQUEST: usize = 16 * 1024;
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

    let for_signals = Arc::clone(&server);
    std::thread::spawn(move || wait_for_signals(&signals, &for_signals));

    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropping the stream closes it
        }
        let server = Arc::clone(&server);
        let done = Arc::clone(&active);
        let spawned = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
            serve(&server, &stream);
            done.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

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
fn serve(server: &Server, stream: &TcpStream) {
    let Ok(peer) = stream.peer_addr() else { return };
    let caller = peer.ip().to_canonical();
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let mut reader = BufReader::new(stream);

    let (method, target, answer) = match read_request(&mut reader) {
        Ok(request) => {
            let format = render::negotiate(request.accept.as_deref());
            let answer = respond(server, caller, &request.method, &request.target, format);
            (request.method, request.target, answer)
        }
        Err(RequestError::Closed) => return,
        Err(RequestError::Bad(status, message)) => {
            ("-".to_string(), "-".to_string(), Answer::error(Format::Text, status, message))
        }
    };
    // Logged before the answer is sent, so that a client that has its answer finds the line;
    // control characters from the client never reach the terminal.
    let printable = |s: &str| s.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>();
    eprintln!("fake-rancher-metadata: {caller} {} {} {}", printable(&method), printable(&target), answer.status);
    let mut writer = stream;
    let head_only = method == "HEAD";
    let _ = write_answer(&mut writer, &answer, head_only);
    let _ = writer.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    accept: Option<String>,
}

#[derive(Debug)]
enum RequestError {
    /// The client went away or sent nothing: nothing to answer.
    Closed,
    Bad(u16, &'static str),
}

/// Read the request head (bounded by MAX_REQUEST); a body is never read: metadata requests
/// are GETs.
fn read_request(reader: &mut impl BufRead) -> Result<Request, RequestError> {
    let mut limited = reader.take(MAX_REQUEST as u64);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = limited.read_until(b'\n', &mut line).map_err(|_| RequestError::Closed)?;
        if n == 0 {
            return if lines.is_empty() {
                Err(RequestError::Closed)
            } else {
                Err(RequestError::Bad(431, "Request Header Fields Too Large"))
            };
        }
        if !line.ends_with(b"\n") {
            return Err(RequestError::Bad(431, "Request Header Fields Too Large"));
        }
        let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate a stray CRLF before the request line
            }
            break;
        }
        lines.push(text);
    }
    let mut request_line = lines[0].split(' ');
    let (Some(method), Some(target), Some(version)) = (request_line.next(), request_line.next(), request_line.next())
    else {
        return Err(RequestError::Bad(400, "Bad Request"));
    };
    if !version.starts_with("HTTP/1.") || request_line.next().is_some() {
        return Err(RequestError::Bad(400, "Bad Request"));
    }
    let accept: Vec<&str> = lines[1..]
        .iter()
        .filter_map(|h| h.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim())
        .collect();
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        accept: if accept.is_empty() { None } else { Some(accept.join(", ")) },
    })
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
    let tree = server.source.read().unwrap_or_else(|e| e.into_inner()).tree(version, caller, &server.callers);
    match tree.as_ref().and_then(|tree| render::lookup(tree, &keys)) {
        Some(value) => Answer::ok(render::render(value, format)),
        None => Answer::not_found(format),
    }
}

fn write_answer(writer: &mut impl Write, answer: &Answer, head_only: bool) -> std::io::Result<()> {
    let reason = match answer.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        answer.status,
        answer.body.len()
    );
    if answer.status == 200 {
        head.push_str("Access-Control-Allow-Origin: *\r\n");
    } else {
        head.push_str("X-Content-Type-Options: nosniff\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    writer.write_all(head.as_bytes())?;
    if !head_only {
        writer.write_all(answer.body.as_bytes())?;
    }
    Ok(())
}

/// `250ms`, `3s`, `1.5s`, `2m`, `1h`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("invalid duration unit in {text:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
}
