//! Secrets (docs/spec.md sections 7 and 8, docs/faults.md 25): the cookie file, and the cookie never printed —
//! not in logs at trace level, not by `print-env` without `--show-secrets`, not by `--dry-run`, not
//! in any error. Also `print-env`'s three formats, checked by their consumers (sh, serde_json).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{BIN, assert_code, rancher_boot, run, stderr, stdout, tempdir, write_file};

/// A cookie no other text holds, so finding either half of it anywhere is a leak.
const HEAD: &str = "Zq7Kp2x";
const TAIL: &str = "Vb9Wm4y";
const NODE: &str = "hello@10.42.96.65";

fn cookie() -> String {
    format!("{HEAD}-{TAIL}")
}

/// rancher-boot with the local identity every test here uses.
fn boot() -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "10.42.96.65", "--service", "my-hello-service", "--peers", "none"]);
    command
}

#[track_caller]
fn assert_no_cookie(output: &Output) {
    for (name, text) in [("stdout", stdout(output)), ("stderr", stderr(output))] {
        assert!(!text.contains(HEAD) && !text.contains(TAIL), "the cookie is in {name}:\n{text}");
    }
}

fn print_env(cookie_file: &Path, extra: &[&str]) -> Output {
    run(boot().arg("--cookie-file").arg(cookie_file).args(["--node-basename", "hello", "print-env"]).args(extra))
}

// ---------------------------------------------------------------------------------------------
// Reading the cookie file

#[test]
fn a_cookie_file_with_a_trailing_newline_is_exported_as_release_cookie() {
    let dir = tempdir();
    for content in [format!("{}\n", cookie()), cookie()] {
        let file = write_file(&dir.path().join("cookie"), &content);
        let output =
            run(boot().arg("--cookie-file").arg(&file).args(["--", "sh", "-c", r#"printf '[%s]' "$RELEASE_COOKIE""#]));
        assert_code(&output, 0);
        assert_eq!(stdout(&output), format!("[{}]", cookie()), "from {content:?}");
        assert!(!stderr(&output).contains(HEAD), "{}", stderr(&output));
    }
}

#[test]
fn the_cookie_renders_into_vm_args_and_rancher_boot_cookie_file_is_the_twin() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let vm = write_file(&dir.path().join("vm.args.src"), "-name ${NODE_NAME}\n-setcookie ${RELEASE_COOKIE}\n");
    let output = run(boot()
        .env("RANCHER_BOOT_COOKIE_FILE", &file)
        .arg("--vm-args")
        .arg(&vm)
        .arg("--runtime-dir")
        .arg(dir.path().join("rt"))
        .args(["--node-basename", "hello", "--", "sh", "-c", r#"cat "$RELEASE_VM_ARGS""#]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("-name {NODE}\n-setcookie {}\n", cookie()));
    assert!(!stderr(&output).contains(HEAD), "{}", stderr(&output));
}

#[test]
fn an_invalid_cookie_is_78_and_never_echoed() {
    let cases: [(&str, Vec<u8>); 11] = [
        ("a space", format!("{HEAD} {TAIL}").into_bytes()),
        ("a '#'", format!("{HEAD}#{TAIL}").into_bytes()),
        ("a control character", format!("{HEAD}\x01{TAIL}").into_bytes()),
        ("a control character", format!("{HEAD}\t{TAIL}").into_bytes()),
        ("a control character", format!("{HEAD}\x1b[0m{TAIL}").into_bytes()),
        ("a line break", format!("{HEAD}{TAIL}\r\n").into_bytes()),
        ("a line break", format!("{HEAD}{TAIL}\n\n").into_bytes()),
        ("not ASCII", format!("{HEAD}é{TAIL}").into_bytes()),
        ("empty", b"\n".to_vec()),
        ("starts with '-' or '+'", format!("-{HEAD}{TAIL}").into_bytes()),
        ("starts with '-' or '+'", format!("+{HEAD}{TAIL}").into_bytes()),
    ];
    for (why, content) in cases {
        let dir = tempdir();
        let file = write_file(&dir.path().join("cookie"), &content);
        let output = run(boot().arg("--cookie-file").arg(&file).args(["--", "sh", "-c", "echo the program ran"]));
        assert_code(&output, 78);
        assert_no_cookie(&output);
        let err = stderr(&output);
        assert_eq!(stdout(&output), "", "the program must not run for {content:?}");
        assert_eq!(err.lines().count(), 1, "one line for {content:?}:\n{err}");
        assert!(err.starts_with("rancher-boot: error: "), "{err}");
        assert!(err.contains(&*file.to_string_lossy()), "the file is named:\n{err}");
        assert!(err.contains(why), "{content:?} should be explained as {why:?}:\n{err}");
    }
}

#[test]
fn a_missing_cookie_file_is_78_naming_it() {
    let dir = tempdir();
    let missing = dir.path().join("run/secrets/erlang-cookie");
    let output = run(boot().arg("--cookie-file").arg(&missing).args(["--", "true"]));
    assert_code(&output, 78);
    assert_eq!(
        stderr(&output),
        format!("rancher-boot: error: cannot read cookie file {}: No such file or directory\n", missing.display())
    );
}

// ---------------------------------------------------------------------------------------------
// The cookie is never printed

#[test]
fn the_cookie_is_not_logged_even_at_trace_level() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let vm = write_file(&dir.path().join("vm.args.src"), "-name ${NODE_NAME}\n-setcookie ${RELEASE_COOKIE}\n");
    let conf = write_file(&dir.path().join("app.conf.src"), "cookie = ${RELEASE_COOKIE}\n");
    for verbosity in [&["-vv"][..], &["--log", "trace"]] {
        let output = run(boot()
            .arg("--cookie-file")
            .arg(&file)
            .arg("--vm-args")
            .arg(&vm)
            .arg("--template")
            .arg(&conf)
            .arg("--runtime-dir")
            .arg(dir.path().join("rt"))
            .args(verbosity)
            .args(["--", "true"]));
        assert_code(&output, 0);
        assert!(stderr(&output).contains("rancher-boot: debug: "), "trace logging is on:\n{}", stderr(&output));
        assert_no_cookie(&output);
    }
    let output = run(boot()
        .env("RANCHER_BOOT_LOG", "trace")
        .arg("--cookie-file")
        .arg(&file)
        .arg("--vm-args")
        .arg(&vm)
        .arg("--runtime-dir")
        .arg(dir.path().join("rt"))
        .args(["--", "true"]));
    assert_code(&output, 0);
    assert!(stderr(&output).contains("rancher-boot: debug: "), "{}", stderr(&output));
    assert_no_cookie(&output);
}

#[test]
fn print_env_redacts_the_cookie_in_every_format() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    for format in ["shell", "dotenv", "json"] {
        let output = print_env(&file, &["--format", format]);
        assert_code(&output, 0);
        assert_no_cookie(&output);
        assert!(stdout(&output).contains("<redacted>"), "{format}:\n{}", stdout(&output));
    }
    let output = print_env(&file, &["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(json["RELEASE_COOKIE"], "<redacted>");
}

#[test]
fn show_secrets_shows_the_cookie() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let expected = [
        ("shell", format!("export RELEASE_COOKIE='{}'\n", cookie())),
        ("dotenv", format!("RELEASE_COOKIE={}\n", cookie())),
        ("json", format!("\"RELEASE_COOKIE\":\"{}\"", cookie())),
    ];
    for (format, line) in expected {
        let output = print_env(&file, &["--format", format, "--show-secrets"]);
        assert_code(&output, 0);
        assert!(stdout(&output).contains(&line), "{format}:\n{}", stdout(&output));
        assert!(!stdout(&output).contains("<redacted>"), "{}", stdout(&output));
    }
}

#[test]
fn dry_run_exports_redact_the_cookie() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let output = run(boot().arg("--cookie-file").arg(&file).args(["--dry-run", "--", "/opt/app/bin/hello", "start"]));
    assert_code(&output, 0);
    assert_no_cookie(&output);
    assert!(stdout(&output).contains("export RELEASE_COOKIE='<redacted>'\n"), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("exec /opt/app/bin/hello start\n"), "{}", stdout(&output));
}

/// `--dry-run` prints the rendered vm.args, and `-setcookie ${RELEASE_COOKIE}` is the usual line.
#[test]
fn dry_run_never_shows_the_cookie_in_rendered_files() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let vm = write_file(&dir.path().join("vm.args.src"), "-name ${NODE_NAME}\n-setcookie ${RELEASE_COOKIE}\n");
    let output = run(boot()
        .arg("--cookie-file")
        .arg(&file)
        .arg("--vm-args")
        .arg(&vm)
        .arg("--runtime-dir")
        .arg(dir.path().join("rt"))
        .args(["--dry-run", "--", "/opt/app/bin/hello"]));
    assert_code(&output, 0);
    assert_no_cookie(&output);
    assert!(stdout(&output).contains("-setcookie <redacted>\n"), "{}", stdout(&output));
}

#[test]
fn no_error_holds_the_cookie() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let vm = write_file(
        &dir.path().join("vm.args.src"),
        "-name ${NODE_NAME}\n-setcookie ${RELEASE_COOKIE}\n-x ${RB_IT_UNSET}\n-y ${RB_IT_NEWLINE}\n",
    );
    // A template error next to the cookie.
    let output = run(boot()
        .env_remove("RB_IT_UNSET")
        .env("RB_IT_NEWLINE", format!("{}\n", cookie()))
        .arg("--cookie-file")
        .arg(&file)
        .arg("--vm-args")
        .arg(&vm)
        .arg("--runtime-dir")
        .arg(dir.path().join("rt"))
        .args(["-vv", "--", "true"]));
    assert_code(&output, 78);
    assert_no_cookie(&output);
    assert!(stderr(&output).contains("RB_IT_NEWLINE holds a control character"), "{}", stderr(&output));

    // A write error after the cookie was read.
    let not_dir = write_file(&dir.path().join("file"), "");
    let ok_vm = write_file(&dir.path().join("ok.src"), "-setcookie ${RELEASE_COOKIE}\n");
    let output = run(boot()
        .arg("--cookie-file")
        .arg(&file)
        .arg("--vm-args")
        .arg(&ok_vm)
        .arg("--runtime-dir")
        .arg(not_dir.join("rt"))
        .args(["-vv", "--", "true"]));
    assert_code(&output, 73);
    assert_no_cookie(&output);

    // An exec error with the cookie in the environment.
    let output =
        run(boot().arg("--cookie-file").arg(&file).args(["-vv", "--"]).arg(dir.path().join("no-such-program")));
    assert_code(&output, 127);
    assert_no_cookie(&output);
}

#[test]
fn other_secret_values_are_not_printed_when_refused() {
    let dir = tempdir();
    let conf = write_file(&dir.path().join("db.conf.src"), "password = ${DB_PASSWORD}\n");
    let output = run(boot()
        .env("DB_PASSWORD", format!("{HEAD}\n{TAIL}"))
        .arg("--template")
        .arg(&conf)
        .arg("--runtime-dir")
        .arg(dir.path().join("rt"))
        .args(["--", "true"]));
    assert_code(&output, 78);
    assert_no_cookie(&output);
    assert!(stderr(&output).contains("DB_PASSWORD"), "the variable is named:\n{}", stderr(&output));
}

// ---------------------------------------------------------------------------------------------
// print-env formats, read back by what consumes them

/// `sh` with the same clean environment as [`rancher_boot`].
fn clean_sh() -> Command {
    let template = rancher_boot();
    let mut sh = Command::new("sh");
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => sh.env(name, value),
            None => sh.env_remove(name),
        };
    }
    sh
}

#[test]
fn print_env_shell_output_can_be_evaluated() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let output = run(clean_sh()
        .args([
            "-c",
            r#"eval "$("$0" --source local --ip 10.42.96.65 --service my-hello-service --peers none \
                   --node-basename hello --cookie-file "$1" print-env)" || exit 9
               printf '%s|' "$NODE_NAME" "$SERVICE_NAME" "$RELEASE_NODE" "$RELEASE_DISTRIBUTION" \
                   "$PEER_NODES_ERL" "$PEER_NODES" "$RELEASE_COOKIE""#,
            BIN,
        ])
        .arg(&file));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("{NODE}|my-hello-service|{NODE}|name|[]||<redacted>|"));
}

#[test]
fn print_env_dotenv_is_one_sorted_assignment_per_line() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let output = print_env(&file, &["--format", "dotenv"]);
    assert_code(&output, 0);
    let out = stdout(&output);
    let pairs: Vec<(&str, &str)> = out.lines().map(|l| l.split_once('=').expect("NAME=value")).collect();
    let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted:\n{out}");
    for expected in [
        ("NODE_IP", "10.42.96.65"),
        ("NODE_NAME", NODE),
        ("SERVICE_NAME", "my-hello-service"),
        ("RANCHER_IP", "10.42.96.65"),
        ("RANCHER_SERVICE_NAME", "my-hello-service"),
        ("RELEASE_DISTRIBUTION", "name"),
        ("RELEASE_NODE", NODE),
        ("PEER_NODES_ERL", "[]"),
        ("RELEASE_COOKIE", "<redacted>"),
    ] {
        assert!(pairs.contains(&expected), "{expected:?} missing:\n{out}");
    }
}

#[test]
fn print_env_json_is_one_object_of_strings() {
    let dir = tempdir();
    let file = write_file(&dir.path().join("cookie"), format!("{}\n", cookie()));
    let output = print_env(&file, &["--format", "json", "--show-secrets"]);
    assert_code(&output, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("valid JSON");
    let object = json.as_object().expect("an object");
    assert!(object.values().all(serde_json::Value::is_string), "{json}");
    assert_eq!(object["NODE_NAME"], NODE);
    assert_eq!(object["RELEASE_NODE"], NODE);
    assert_eq!(object["RELEASE_DISTRIBUTION"], "name");
    assert_eq!(object["SERVICE_NAME"], "my-hello-service");
    assert_eq!(object["PEER_IPS"], "");
    assert_eq!(object["RELEASE_COOKIE"], cookie().as_str());
    assert!(!object.contains_key("STACK_NAME"), "local source has no stack: {json}");
}
