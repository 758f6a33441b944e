//! The command line as a new user meets it: every option checked before any waiting, conflicts
//! and bad values named by what the user set (the flag or its variable), clap's errors in the
//! same `rancher-boot: error:` form as every other, and what a mix release needs (a cookie) said
//! before the release dies of it.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::test::Test;
use crate::support::{assert_code, closed_port, rancher_boot, run, stderr, stdout, tempdir, write_file};

/// A local identity, no peers, the program `true`.
const LOCAL: [&str; 8] = ["--source", "local", "--ip", "10.9.0.1", "--service", "svc", "--node-basename", "hello"];

#[test]
fn a_bad_peer_query_is_a_64_before_any_waiting() {
    // Metadata never answers: before, the boot waited out --timeout (69) and never got as far as
    // the peer query.
    let url = format!("http://{}/2016-07-29", closed_port());
    let started = Instant::now();
    let output = run(rancher_boot().args(["--source", "rancher", "--metadata-url", &url, "--timeout", "20s"]).args([
        "--peer-query",
        "hello..svc",
        "--",
        "true",
    ]));
    assert_code(&output, 64);
    assert!(stderr(&output).contains("hello..svc"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn a_count_or_a_port_that_is_no_number_says_what_is_wanted() {
    Test::new()
        .args(LOCAL)
        .args(["--wait-peers", "x", "--", "true"])
        .run()
        .code(64)
        .stderr_has("'--wait-peers <N>': \"x\" is not a number (0, 1, 2, ...)");
    Test::new()
        .args(LOCAL)
        .env("RANCHER_BOOT_DIST_PORT", "70000")
        .args(["--", "true"])
        .run()
        .code(64)
        .stderr_has("RANCHER_BOOT_DIST_PORT (the variable of --dist-port): \"70000\" is not a port (1 to 65535)");
}

#[test]
fn wait_peers_with_peers_none_is_a_64_naming_both() {
    Test::new()
        .args(LOCAL)
        .args(["--peers", "none", "--wait-peers", "2", "--", "true"])
        .run()
        .code(64)
        .stderr_has("--wait-peers 2")
        .stderr_has("--peers none");
}

#[test]
fn a_log_level_that_is_none_is_a_64_listing_the_levels() {
    for level in ["warning", "verbose"] {
        Test::new()
            .env("RANCHER_BOOT_LOG", level)
            .args(LOCAL)
            .args(["--", "true"])
            .run()
            .code(64)
            .stderr_has(&format!("RANCHER_BOOT_LOG) \"{level}\""))
            .stderr_has("off, error, warn, info, debug, trace");
    }
    // Levels, and env_logger's module=level, stay accepted.
    for filter in ["warn", "DEBUG", "rancher_boot=debug", "info,rancher_boot::dns=trace"] {
        Test::new().env("RANCHER_BOOT_LOG", filter).args(LOCAL).args(["--peers", "none", "--", "true"]).run().code(0);
    }
}

/// A mix release as `mix release` lays it out, its script reading releases/COOKIE when
/// RELEASE_COOKIE is empty or unset (as Elixir's does), the COOKIE file removed from the image.
fn mix_release(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir bin");
    std::fs::create_dir_all(dir.join("releases/0.1.0")).expect("mkdir releases");
    write_file(&dir.join("releases/start_erl.data"), "14.2 0.1.0\n");
    let script = write_file(
        &dir.join("bin/hello"),
        "#!/bin/sh\nset -e\nRELEASE_ROOT=\"$(dirname \"$0\")/..\"\n\
         export RELEASE_COOKIE=\"${RELEASE_COOKIE:-\"$(cat \"$RELEASE_ROOT/releases/COOKIE\")\"}\"\necho started\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

#[test]
fn a_mix_release_without_a_cookie_is_a_78_saying_what_is_missing() {
    let dir = tempdir();
    let script = mix_release(dir.path());
    let script = script.to_str().unwrap();
    for cookie in [None, Some("")] {
        let mut command = rancher_boot();
        if let Some(cookie) = cookie {
            command.env("RELEASE_COOKIE", cookie);
        }
        let output = run(command.args(LOCAL).args(["--peers", "none", "--", script, "start"]));
        assert_code(&output, 78);
        let err = stderr(&output);
        assert!(err.contains("releases/COOKIE") && err.contains("--cookie-file"), "{err}");
        assert!(err.contains("RELEASE_COOKIE"), "{err}");
        assert_eq!(stdout(&output), "", "the release must not run");
    }
    // With a cookie from anywhere, it runs.
    let cookie = write_file(&dir.path().join("cookie"), "secret-cookie\n");
    let output =
        run(rancher_boot().args(LOCAL).args(["--peers", "none", "--cookie-file"]).arg(&cookie).args(["--", script]));
    assert_code(&output, 0);
    let output =
        run(rancher_boot().env("RELEASE_COOKIE", "c00kie").args(LOCAL).args(["--peers", "none", "--", script]));
    assert_code(&output, 0);
    write_file(&dir.path().join("releases/COOKIE"), "baked");
    let output = run(rancher_boot().args(LOCAL).args(["--peers", "none", "--", script]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "started\n");
}
#[test]
fn a_bad_value_from_a_variable_is_named_by_the_variable() {
    let output = run(rancher_boot().env("RANCHER_BOOT_IP", "10.0.0.300").args(["--", "true"]));
    assert_code(&output, 64);
    let err = stderr(&output);
    assert!(err.starts_with("rancher-boot: error: "), "{err}");
    assert!(err.contains("RANCHER_BOOT_IP") && err.contains("10.0.0.300"), "{err}");
    assert!(!err.contains("'--ip <IP>'"), "{err}");
    // The same value on the command line is the flag's.
    let output = run(rancher_boot().args(["--ip", "10.0.0.300", "--", "true"]));
    assert_code(&output, 64);
    assert!(stderr(&output).contains("--ip"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("RANCHER_BOOT_IP"), "{}", stderr(&output));
}

#[test]
fn a_bad_boolean_lists_the_accepted_words() {
    let output = run(rancher_boot().env("RANCHER_BOOT_INIT", "maybe").args(["--", "true"]));
    assert_code(&output, 64);
    let err = stderr(&output);
    assert!(err.contains("RANCHER_BOOT_INIT") && err.contains("maybe"), "{err}");
    assert!(err.contains("true/false") && err.contains("1/0"), "{err}");
}

#[test]
fn clap_errors_have_the_prefix_and_a_misspelt_option_gets_a_suggestion() {
    let output = run(rancher_boot().args(["--wait-peer", "2", "--", "true"]));
    assert_code(&output, 64);
    let err = stderr(&output);
    assert!(err.starts_with("rancher-boot: error: "), "{err}");
    assert!(err.contains("--wait-peers"), "no suggestion: {err}");
    // Help and version are no errors: stdout, 0.
    let output = run(rancher_boot().arg("--version"));
    assert_code(&output, 0);
    assert!(stdout(&output).starts_with("rancher-boot "), "{}", stdout(&output));
}
