//! Starts N copies of a command at once and times each one.
//!
//!     herd N COMMAND [ARGS...]
//!
//! N threads wait on a barrier, then each spawns the command (stdin, stdout and stderr to
//! /dev/null) and waits for it; the time of one boot is from just before its spawn to its exit.
//! Prints one line per child (`ms exit`), then `ok=K failed=F p50_ms=.. p90_ms=.. p99_ms=..
//! max_ms=.. wall_ms=..`. Exits 1 if any child failed. std only, so `rustc` builds it alone.
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: herd N COMMAND [ARGS...]");
        std::process::exit(64);
    }
    let n: usize = args[0].parse().unwrap_or_else(|_| {
        eprintln!("herd: N must be a number");
        std::process::exit(64)
    });
    let command = Arc::new(args[1..].to_vec());
    let barrier = Arc::new(Barrier::new(n));
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (command, barrier) = (Arc::clone(&command), Arc::clone(&barrier));
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    let status = Command::new(&command[0])
                        .args(&command[1..])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let code = match status {
                        Ok(s) => s.code().unwrap_or(-1),
                        Err(_) => -2,
                    };
                    (ms, code)
                })
                .expect("spawn thread")
        })
        .collect();
    let mut results: Vec<(f64, i32)> = threads.into_iter().map(|t| t.join().expect("join")).collect();
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    for (ms, code) in &results {
        println!("{ms:.3} {code}");
    }
    let failed = results.iter().filter(|(_, code)| *code != 0).count();
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pct = |p: f64| results[((p / 100.0) * (n as f64 - 1.0)).round() as usize].0;
    println!(
        "ok={} failed={failed} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} wall_ms={wall:.2}",
        n - failed,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        results[n - 1].0
    );
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
