//! The Rancher source against a scripted metadata server: docs/faults.md items 1-10.

use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

const IP: &str = "10.42.96.65";

/// A boot that prints its node name and service, with the given metadata URL and deadline.
/// rancher-boot's own debug lines are on (one per attempt), other crates' off.
fn boot(url: &str, timeout: &str) -> std::process::Command {
    let mut command = rancher_boot();
    command.args(["--metadata-url", url, "--timeout", timeout, "--peers", "none", "--node-basename", "hello"]);
    command.args(["--log", "rancher_boot=debug", "--"]);
    command.args(["sh", "-c", "echo \"$NODE_NAME $SERVICE_NAME $STACK_NAME $CONTAINER_NAME\""]);
    command
}

/// The failed attempts: a debug line each.
fn attempts(output: &std::process::Output) -> usize {
    stderr(output).lines().filter(|l| l.starts_with("rancher-boot: debug: metadata attempt")).count()
}

/// The warnings of the wait: the first failure and each error not seen before.
fn warnings(output: &std::process::Output) -> usize {
    stderr(output).lines().filter(|l| l.starts_with("rancher-boot: warn: metadata attempt")).count()
}

#[test]
fn one_json_request_gives_the_whole_identity() {
    let server = MetadataServer::start(|_, path| {
        assert_eq!(path, "/2016-07-29/self/container");
        Reply::ok(container_json(IP, "my-hello-service"))
    });
    let output = run(&mut boot(&server.url(), "10s"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.42.96.65 my-hello-service demo demo-my-hello-service-1\n");
    assert_eq!(server.requests(), 1, "one request, not one per key");
    assert_eq!(server.accept_headers(), ["application/json"]);
    assert!(
        stderr(&output).contains(&format!(
            "rancher-boot: info: node hello@10.42.96.65 (rancher: self/container of demo-my-hello-service-1 at {}), \
                 service my-hello-service, 0 peers; exec sh -c",
            server.url()
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn latest_and_a_trailing_slash_work_too() {
    let server = MetadataServer::start(|_, path| {
        assert_eq!(path, "/latest/self/container");
        Reply::ok(container_json(IP, "web"))
    });
    let output = run(&mut boot(&format!("http://{}/latest/", server.addr), "10s"));
    assert_code(&output, 0);
}

#[test]
fn fault_01_connection_refused_then_answers() {
    let port = RefusingPort::new();
    let addr = port.addr;
    let ready = Arc::new(std::sync::Mutex::new(None));
    let ready_at = ready.clone();
    let server = thread::spawn(move || {
        thread::sleep(Duration::from_secs(3)); // the fault: nothing listens for 3 s
        let listener = port.listen();
        *ready_at.lock().expect("lock") = Some(Instant::now());
        MetadataServer::serve(listener, Arc::new(|_, _| Reply::ok(container_json(IP, "web"))))
    });
    let output = run(&mut boot(&format!("http://{addr}/2016-07-29"), "30s"));
    let server = server.join().expect("server thread");
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.42.96.65 web demo demo-web-1\n");
    let failed = attempts(&output);
    assert!(failed >= 10, "one attempt after another over 3 s, got {failed}:\n{}", stderr(&output));
    assert_eq!(warnings(&output), 1, "the same error again is no news:\n{}", stderr(&output));
    assert!(!stderr(&output).contains("still waiting"), "no progress line before 5 s:\n{}", stderr(&output));
    assert!(stderr(&output).contains("Connection refused"), "{}", stderr(&output));
    // Back-off is capped at 200 ms: the first request after readiness comes soon after it.
    let ready = ready.lock().expect("lock").expect("ready");
    let first = server.log.lock().expect("log")[0].0;
    assert!(first.duration_since(ready) < Duration::from_millis(600), "{:?}", first.duration_since(ready));
}

#[test]
fn fault_02_never_reachable_exits_69_at_the_deadline() {
    let dir = tempdir();
    let marker = dir.path().join("ran");
    let url = format!("http://{}/2016-07-29", closed_port());
    let started = Instant::now();
    let output = run(rancher_boot()
        .args(["--metadata-url", &url, "--timeout", "2s", "--peers", "none", "--", "touch"])
        .arg(&marker));
    let elapsed = started.elapsed();
    assert_code(&output, 69);
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(!marker.exists(), "the program must never run without an identity");
    let last = stderr(&output).lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("rancher-boot: error: cannot get metadata: gave up after "), "{last}");
    assert!(last.contains(" attempts in 2.0s; last error: GET ") && last.contains(&url), "{last}");
    assert!(last.ends_with("Connection refused"), "{last}");
}

#[test]
fn fault_03_a_server_that_never_answers_is_cut_by_the_deadline() {
    let server = MetadataServer::start(|_, _| Reply::Hang);
    let started = Instant::now();
    let output = run(&mut boot(&server.url(), "2s"));
    assert_code(&output, 69);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(3500), "the overall deadline holds: {elapsed:?}");
    assert!(stderr(&output).to_lowercase().contains("timeout"), "{}", stderr(&output));
}

#[test]
fn fault_03_the_per_request_timeout_fires_and_the_next_attempt_succeeds() {
    let server = MetadataServer::start(|n, _| if n == 1 { Reply::Hang } else { Reply::ok(container_json(IP, "web")) });
    let started = Instant::now();
    let output = run(&mut boot(&server.url(), "30s"));
    assert_code(&output, 0);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(8), "about 5 s: {elapsed:?}");
    assert_eq!(warnings(&output), 1, "{}", stderr(&output));
}

#[test]
fn fault_04_a_trickling_body_is_cut_and_retried() {
    let server =
        MetadataServer::start(|n, _| if n == 1 { Reply::Trickle } else { Reply::ok(container_json(IP, "web")) });
    let started = Instant::now();
    let output = run(&mut boot(&server.url(), "30s"));
    assert_code(&output, 0);
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert_eq!(warnings(&output), 1, "{}", stderr(&output));
}

#[test]
fn fault_05_not_found_until_registered() {
    let server =
        MetadataServer::start(|n, _| if n <= 5 { Reply::not_found() } else { Reply::ok(container_json(IP, "web")) });
    let output = run(&mut boot(&server.url(), "30s"));
    assert_code(&output, 0);
    assert_eq!(attempts(&output), 5, "{}", stderr(&output));
    assert_eq!(warnings(&output), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("HTTP 404"), "{}", stderr(&output));
}

#[test]
fn fault_06_server_errors_are_retried() {
    let server = MetadataServer::start(|n, _| match n {
        1 => Reply::Status(500, "boom".into()),
        2 => Reply::Status(502, "".into()),
        3 => Reply::Status(503, "<html>busy</html>".into()),
        4 => Reply::Close,
        5 => Reply::Status(302, "".into()),
        _ => Reply::ok(container_json(IP, "web")),
    });
    let output = run(&mut boot(&server.url(), "30s"));
    assert_code(&output, 0);
    assert_eq!(attempts(&output), 5, "{}", stderr(&output));
    assert_eq!(warnings(&output), 5, "each a different error: {}", stderr(&output));
    assert_eq!(server.requests(), 6, "no redirect followed");
}

#[test]
fn a_long_wait_says_so_every_five_seconds_not_every_attempt() {
    let server = MetadataServer::start(|_, _| Reply::not_found());
    let mut command = rancher_boot();
    command.args(["--metadata-url", &server.url(), "--timeout", "5600ms", "--peers", "none", "--", "true"]);
    let output = run(&mut command);
    assert_code(&output, 69);
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "a warning, one progress line, the error:\n{err}");
    assert!(lines[0].starts_with("rancher-boot: warn: metadata attempt 1 failed after "), "{err}");
    assert!(lines[1].starts_with("rancher-boot: info: still waiting for metadata: "), "{err}");
    assert!(lines[1].contains(" attempts in 5.") && lines[1].ends_with("/self/container: HTTP 404"), "{err}");
    assert!(lines[2].starts_with("rancher-boot: error: cannot get metadata: gave up after "), "{err}");
    assert!(server.requests() >= 25, "it kept asking: {}", server.requests());
}

#[test]
fn fault_06_an_empty_answer_until_the_deadline_is_65() {
    let server = MetadataServer::start(|_, _| Reply::ok(""));
    let output = run(&mut boot(&server.url(), "1s"));
    assert_code(&output, 65);
    assert!(stderr(&output).trim_end().ends_with("last error: empty primary_ip"), "{}", stderr(&output));
    assert!(server.requests() > 2, "retried");
}

#[test]
fn fault_07_an_oversized_or_endless_body_stops_at_the_cap() {
    for reply in [Reply::ok(format!("{{\"x\":\"{}\"}}", "a".repeat(1 << 20))), Reply::Endless] {
        let server = MetadataServer::start(move |_, _| reply.clone());
        let started = Instant::now();
        let output = run(&mut boot(&server.url(), "1s"));
        assert_code(&output, 69);
        assert!(stderr(&output).contains("answer larger than 65536 bytes"), "{}", stderr(&output));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

#[test]
fn fault_08_an_invalid_primary_ip_is_65_and_shown_escaped() {
    let cases = [
        ("10.42.1", "\"10.42.1\""),
        ("999.1.1.1", "\"999.1.1.1\""),
        ("<html><body>It works</body></html>", "\"<html><body>It works</body></html>\""),
        ("10.0.0.1 extra", "\"10.0.0.1 extra\""),
        ("10.0.0.1\\r\\n\\u001b[2J", "\"10.0.0.1\\r\\n\\u{1b}[2J\""),
    ];
    for (value, shown) in cases {
        let dir = tempdir();
        let template = dir.path().join("vm.args.src");
        std::fs::write(&template, "-name ${NODE_NAME}\n").expect("write");
        let body = format!(r#"{{"primary_ip":"{value}","service_name":"web"}}"#);
        let server = MetadataServer::start(move |_, _| Reply::ok(body.clone()));
        let output = run(boot(&server.url(), "1s")
            .arg("--vm-args")
            .arg(&template)
            .arg("--runtime-dir")
            .arg(dir.path().join("run")));
        assert_code(&output, 65);
        let last = stderr(&output).lines().last().unwrap_or_default().to_string();
        assert!(last.ends_with(&format!("primary_ip {shown} is not an IP address")), "{value}: {last}");
        assert!(!dir.path().join("run").exists(), "nothing rendered");
    }
}

#[test]
fn fault_08_a_body_that_is_not_json_is_invalid() {
    let server = MetadataServer::start(|_, _| Reply::ok("<html>\n<h1>Welcome to nginx!</h1>"));
    let output = run(&mut boot(&server.url(), "1s"));
    assert_code(&output, 65);
    assert!(stderr(&output).contains(r#"answer is not JSON"#), "{}", stderr(&output));
    assert!(stderr(&output).contains(r#""<html>\n<h1>Welcome"#), "escaped: {}", stderr(&output));
}

#[test]
fn fault_09_unreachable_addresses_are_refused() {
    for ip in ["0.0.0.0", "127.0.0.1", "169.254.1.1", "::1", "fe80::1"] {
        let server = MetadataServer::start(move |_, _| Reply::ok(container_json(ip, "web")));
        let output = run(&mut boot(&server.url(), "500ms"));
        assert_code(&output, 65);
        assert!(stderr(&output).contains("is not an address other nodes can reach"), "{ip}: {}", stderr(&output));
    }
}

#[test]
fn invalid_then_valid_boots() {
    let server = MetadataServer::start(|n, _| match n {
        1 => Reply::ok(r#"{"primary_ip":"","service_name":"web"}"#),
        2 => Reply::ok(r#"{"primary_ip":"10.0.0.9","service_name":"bad name"}"#),
        _ => Reply::ok(container_json("10.0.0.9", "web")),
    });
    let output = run(&mut boot(&server.url(), "10s"));
    assert_code(&output, 0);
    assert_eq!(warnings(&output), 2, "two different errors");
    assert!(stderr(&output).contains(r#"service_name: name "bad name" is not of the form"#), "{}", stderr(&output));
}

#[test]
fn the_older_api_and_unknown_fields_are_accepted() {
    // 2015-07-25 answers carry no stack_name in self/container in some versions, and extra fields.
    let server = MetadataServer::start(|_, _| {
        Reply::ok(r#"{"primary_ip":"10.1.2.3","service_name":"web","name":"web_1","ports":[],"extra":{"a":[1]}}"#)
    });
    let output = run(&mut boot(&server.url().replace("2016-07-29", "2015-07-25"), "5s"));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "hello@10.1.2.3 web  web_1\n");
}

#[test]
fn proxies_are_never_used_for_metadata() {
    let server = MetadataServer::start(|_, _| Reply::ok(container_json(IP, "web")));
    let dead_proxy = format!("http://{}", closed_port());
    let output = run(boot(&server.url(), "5s")
        .env("http_proxy", &dead_proxy)
        .env("HTTP_PROXY", &dead_proxy)
        .env("ALL_PROXY", &dead_proxy));
    assert_code(&output, 0);
    assert_eq!(server.requests(), 1);
}

#[test]
fn fault_10_a_name_that_does_not_resolve_is_retried() {
    let output = run(&mut in_empty_netns(&boot("http://rancher-boot-test.invalid/2016-07-29", "1s")));
    assert_code(&output, 69);
    assert!(attempts(&output) >= 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("host name does not resolve"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("169.254.169.250"), "only the default URL falls back");
}

#[test]
fn fault_10_the_default_url_alternates_with_the_link_local_address() {
    // --source rancher: with the default URL and no name resolving, detection would go on to
    // the local source (which finds no address in an empty namespace).
    let mut command = rancher_boot();
    command.args(["--source", "rancher", "--timeout", "1s", "--peers", "none", "--node-basename", "hello"]);
    command.args(["--log", "rancher_boot=debug", "--", "true"]);
    let output = run(&mut in_empty_netns(&command));
    assert_code(&output, 69);
    let err = stderr(&output);
    let named = err
        .lines()
        .filter(|l| l.contains("http://rancher-metadata.rancher.internal/2016-07-29/self/container"))
        .count();
    let link_local = err.lines().filter(|l| l.contains("http://169.254.169.250/2016-07-29/self/container")).count();
    assert!(named >= 2 && link_local >= 2, "attempts alternate:\n{err}");
}

#[test]
fn not_found_for_good_is_69_naming_the_status_and_the_url() {
    // A container that metadata never knows (Rancher's network_mode: host, rancher/rancher#2750).
    let server = MetadataServer::start(|_, _| Reply::not_found());
    let output = run(&mut boot(&server.url(), "1s"));
    assert_code(&output, 69);
    let last = stderr(&output).lines().last().unwrap_or_default().to_string();
    assert!(last.ends_with(&format!("last error: GET {}/self/container: HTTP 404", server.url())), "{last}");
}

#[test]
fn fault_10_a_dns_server_that_never_answers_costs_an_attempt_not_the_deadline() {
    // Rancher's DNS may not answer at all early on. The C library would wait its own 5 s per
    // lookup; an attempt gives up after 2 s (so the default URL's next try is the link-local
    // address), and the overall deadline still holds.
    let silent = std::net::UdpSocket::bind("127.0.0.77:53").expect("bind a silent DNS server");
    let dir = tempdir();
    let resolv = write_file(&dir.path().join("resolv.conf"), "nameserver 127.0.0.77\noptions timeout:5 attempts:1\n");
    let mut command = std::process::Command::new("unshare");
    clean_env(&mut command);
    command.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#,
    ]);
    command.arg(&resolv).arg(BIN);
    command.args(["--metadata-url", "http://metadata.rancher-boot.test/2016-07-29", "--timeout", "3s"]);
    command.args(["--peers", "none", "--node-basename", "hello", "--", "true"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RANCHER") {
            command.env_remove(name);
        }
    }
    let started = Instant::now();
    let output = run(&mut command);
    let elapsed = started.elapsed();
    drop(silent);
    assert_code(&output, 69);
    assert!(elapsed < Duration::from_millis(3800), "the deadline holds: {elapsed:?}");
    let first = stderr(&output).lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("attempt 1 failed after 2.0s")
            && first.contains("host name does not resolve (timeout: resolve)"),
        "{first}"
    );
}

#[test]
fn the_metadata_host_is_found_in_etc_hosts_before_dns() {
    // The C library's "files dns" order, kept by rancher-boot's own resolver: a metadata host that
    // only /etc/hosts names (docker run --add-host) is reached although no DNS server answers.
    let server = MetadataServer::start(|_, _| Reply::ok(container_json("10.42.1.7", "web")));
    let dir = tempdir();
    let hosts =
        write_file(&dir.path().join("hosts"), "127.0.0.1 localhost\n127.0.0.1 meta.rancher-boot.test # the stand-in\n");
    let resolv = write_file(&dir.path().join("resolv.conf"), "nameserver 127.0.0.77\noptions timeout:1 attempts:1\n");
    let mut command = Command::new("unshare");
    clean_env(&mut command);
    command.args(["--mount", "--propagation", "private", "sh", "-c"]);
    command.arg(r#"mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@""#);
    command.arg(&hosts).arg(&resolv).arg(BIN);
    let url = format!("http://meta.rancher-boot.test:{}/2016-07-29", server.addr.port());
    command.args(["--source", "rancher", "--metadata-url", &url, "--timeout", "3s", "--peers", "none"]);
    command.args(["--node-basename", "hello", "print-env", "--format", "dotenv"]);
    let output = run(&mut command);
    assert_code(&output, 0);
    assert!(stdout(&output).contains("NODE_NAME=hello@10.42.1.7\n"), "{}", stderr(&output));
    assert_eq!(server.requests(), 1, "{}", stderr(&output));
}
