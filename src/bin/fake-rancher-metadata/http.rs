//! The HTTP of the metadata test servers: one request per connection (`Connection: close`), a
//! thread per connection, the request head read bounded, the answer's head written in one
//! buffer. Shared by fake-rancher-metadata and the integration tests' scripted `MetadataServer`
//! (`tests/it/support/mod.rs` includes this same file), so it needs nothing but `std`.
//!
//! What to answer is left to each server: the fake renders Rancher's answers (`render.rs`,
//! `source.rs`), the tests' server follows a script, faults included.
#![allow(dead_code)] // each server uses its own part

use std::io::{self, BufRead, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

/// Largest request head (request line and headers) accepted; a metadata GET is tiny.
pub const MAX_REQUEST: usize = 16 * 1024;
/// Stack of a connection's thread: serving a request needs little.
const CONNECTION_STACK: usize = 256 * 1024;

/// Accepts connections on `listener` on a thread of its own, and serves each on a thread of its
/// own with `serve`, until `stop` says so (checked after each accept: a server that stops makes
/// one last connection to wake it). A connection whose thread cannot be made is closed.
pub fn serve_each_on_a_thread(
    listener: TcpListener,
    stop: impl Fn() -> bool + Send + 'static,
    serve: impl Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
) -> io::Result<JoinHandle<()>> {
    let serve = std::sync::Arc::new(serve);
    thread::Builder::new().spawn(move || {
        loop {
            let accepted = listener.accept();
            if stop() {
                break;
            }
            let Ok((stream, peer)) = accepted else { continue };
            let serve = std::sync::Arc::clone(&serve);
            // On failure the closure, and the stream in it, is dropped: the connection closes.
            let _ = thread::Builder::new().stack_size(CONNECTION_STACK).spawn(move || serve(stream, peer));
        }
    })
}

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// The Accept headers, joined with `, `; `None` without one.
    pub accept: Option<String>,
}

#[derive(Debug)]
pub enum RequestError {
    /// The client went away or sent nothing: nothing to answer.
    Closed,
    Bad(u16, &'static str),
}

/// Read the request head (bounded by MAX_REQUEST); a body is never read: metadata requests
/// are GETs.
pub fn read_request(reader: &mut impl BufRead) -> Result<Request, RequestError> {
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

/// The head of an answer with a body of `length` bytes, as text (Rancher's server sends
/// text/plain whatever the body), with `extra` header lines (each ending in CRLF), into `out`.
pub fn head(out: &mut Vec<u8>, status: u16, length: usize, extra: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    out.extend_from_slice(
        format!("HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n").as_bytes(),
    );
    out.extend_from_slice(format!("Content-Length: {length}\r\n{extra}Connection: close\r\n\r\n").as_bytes());
}
