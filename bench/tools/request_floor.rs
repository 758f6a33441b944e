//! The least any entrypoint that asks metadata can cost: a static musl binary that makes one
//! `GET /2016-07-29/self/container` over TCP, takes `primary_ip` out of the answer with a string
//! search, exports `NODE_NAME` and execs its program. No options, no validation, no retry, no
//! timeout, no signal reset: nothing a real entrypoint can do without. rancher-boot's boot minus
//! this is what its own work costs; this minus `exec-floor` is one loopback round trip.
//!
//!     request-floor 127.0.0.1:PORT /bin/true
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(program)) = (args.next(), args.next()) else { std::process::exit(64) };
    let mut stream = std::net::TcpStream::connect(server.as_str()).unwrap_or_else(|e| fail(&e.to_string()));
    let request = format!(
        "GET /2016-07-29/self/container HTTP/1.1\r\nHost: {server}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::with_capacity(4096);
    if let Err(e) = stream.write_all(request.as_bytes()).and_then(|()| stream.read_to_end(&mut answer)) {
        fail(&e.to_string());
    }
    let answer = String::from_utf8_lossy(&answer);
    let Some(ip) = answer.split("\"primary_ip\":\"").nth(1).and_then(|rest| rest.split('"').next()) else {
        fail("no primary_ip in the answer")
    };
    let error = std::process::Command::new(program).args(args).env("NODE_NAME", format!("hello@{ip}")).exec();
    fail(&error.to_string())
}

fn fail(message: &str) -> ! {
    eprintln!("request-floor: {message}");
    std::process::exit(127);
}
