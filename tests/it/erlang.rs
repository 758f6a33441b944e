//! A real Erlang VM (Debian's erlang-nox) booted through rancher-boot comes up with exactly
//! NODE_NAME as its node name: once from a rendered vm.args, once from the environment alone
//! (RELEASE_DISTRIBUTION / RELEASE_NODE, as a mix release reads them).
//!
//! `erl -name` starts epmd when none runs; epmd is shared by every VM on the machine and harmless,
//! so it is left running. Every child runs under a deadline and is killed when it passes. Each test
//! uses its own node basename (with the PID), so that VMs running at once never clash in epmd.

use std::fs::{self};
use std::process::Command;
use std::time::Duration;

use crate::support::{assert_code, rancher_boot, run, run_within, stderr, stdout, tempdir};

const DEADLINE: Duration = Duration::from_secs(60);
const COOKIE: &str = "rbit-Erl4ngC00kie";

/// A node basename of this test process: other test runs on the same machine share epmd.
fn basename(test: &str) -> String {
    format!("rbit_{test}_{}", std::process::id())
}

/// rancher-boot on loopback (fine for `--source local` with an explicit `--ip`).
fn boot(basename: &str) -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "127.0.0.1", "--service", "svc", "--peers", "none"]);
    command.args(["--node-basename", basename]);
    command
}

#[test]
fn erl_comes_up_named_by_the_rendered_vm_args() {
    let dir = tempdir();
    let cookie_file = dir.path().join("cookie");
    fs::write(&cookie_file, format!("{COOKIE}\n")).expect("write cookie");
    // Owner-only, as a secret should be: the cookie lint warns about anything more open.
    fs::set_permissions(&cookie_file, std::os::unix::fs::PermissionsExt::from_mode(0o400)).expect("chmod");
    let template = dir.path().join("vm.args.src");
    fs::write(
        &template,
        "## Name of the node\n\
         -name ${NODE_NAME}\n\
         ## Cookie for distributed Erlang\n\
         -setcookie ${RELEASE_COOKIE}\n\
         -kernel sync_nodes_optional ${PEER_NODES_ERL}\n",
    )
    .expect("write template");
    let runtime = dir.path().join("rt");
    let vm_args = runtime.join("vm.args");
    let name = basename("args");

    let output = run_within(
        boot(&name)
            .arg("--cookie-file")
            .arg(&cookie_file)
            .arg("--vm-args")
            .arg(&template)
            .arg("--runtime-dir")
            .arg(&runtime)
            .args(["--", "erl", "-noshell", "-args_file"])
            .arg(&vm_args)
            .args([
                "-eval",
                "io:format(\"~s ~s ~p~n\", [node(), erlang:get_cookie(), \
                 application:get_env(kernel, sync_nodes_optional)]), halt().",
            ]),
        dir.path(),
        DEADLINE,
    );
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("{name}@127.0.0.1 {COOKIE} {{ok,[]}}\n"));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "info: node {name}@127.0.0.1 (local: --ip given), service svc, 0 peers; exec erl -noshell"
        )),
        "{err}"
    );
    assert!(!err.contains("warn"), "{err}");
    assert!(!err.contains(COOKIE), "{err}");
}

#[test]
fn erl_comes_up_named_by_the_environment_alone() {
    let dir = tempdir();
    let cookie_file = dir.path().join("cookie");
    fs::write(&cookie_file, COOKIE).expect("write cookie");
    let name = basename("env");
    let node = format!("{name}@127.0.0.1");

    // What print-env promises: the variables a mix release reads to name its node.
    let output = run(boot(&name).args(["print-env", "--format", "json"]));
    assert_code(&output, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(json["RELEASE_DISTRIBUTION"], "name");
    assert_eq!(json["RELEASE_NODE"], node.as_str());
    assert_eq!(json["NODE_NAME"], node.as_str());

    // And what a release script does with them: `-$RELEASE_DISTRIBUTION $RELEASE_NODE`, no template.
    let output = run_within(
        boot(&name).arg("--cookie-file").arg(&cookie_file).args([
            "--",
            "sh",
            "-c",
            r#"echo "$NODE_NAME"
               exec erl -noshell -"$RELEASE_DISTRIBUTION" "$RELEASE_NODE" -setcookie "$RELEASE_COOKIE" \
                   -eval 'io:format("~s~n", [node()]), halt().'"#,
        ]),
        dir.path(),
        DEADLINE,
    );
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("{node}\n{node}\n"));
}
