//! `--source`: a named platform is used with no detection, `auto` with no signal is the local
//! source, and what every source shares (`--name-by`). Swarm and Compose are docker_dns.rs's.

use std::process::Command;

use crate::support::{assert_code, in_empty_netns, rancher_boot, run, stderr, stdout};

fn print_env(args: &[&str]) -> Command {
    let mut command = rancher_boot();
    command.args(["--node-basename", "hello", "--ip", "10.1.2.3", "--service", "web"]).args(args);
    command.args(["print-env", "--format", "dotenv"]);
    command
}

#[test]
fn auto_with_no_platform_signal_is_the_local_source() {
    let output = run(&mut in_empty_netns(&print_env(&[])));
    assert_code(&output, 0);
    assert!(stdout(&output).contains("RANCHER_BOOT_PLATFORM=local\n"), "{}", stdout(&output));
    assert!(stdout(&output).contains("DNS_CLUSTER_QUERY=web\n"), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("info: node hello@10.1.2.3 (local: --ip given), service web, 0 peers"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_named_source_is_used_without_detection() {
    // RANCHER_METADATA_URL is detection's rancher signal; the named source wins over it.
    let mut command = print_env(&["-v"]);
    command.env("RANCHER_BOOT_SOURCE", "local").env("RANCHER_METADATA_URL", "http://127.0.0.1:9/latest");
    let output = run(&mut in_empty_netns(&command));
    assert_code(&output, 0);
    assert!(stdout(&output).contains("RANCHER_BOOT_PLATFORM=local\n"), "{}", stdout(&output));
    assert!(!stderr(&output).contains("--source auto"), "no detection: {}", stderr(&output));

    // The same signal under auto: rancher (whose metadata does not answer here).
    let mut command = print_env(&["--timeout", "300ms"]);
    command.env("RANCHER_METADATA_URL", "http://127.0.0.1:9/latest");
    let output = run(&mut in_empty_netns(&command));
    assert_code(&output, 69);
    assert!(stderr(&output).contains("cannot get metadata"), "{}", stderr(&output));
}

#[test]
fn name_by_hostname_needs_a_source_that_knows_one() {
    let output = run(&mut in_empty_netns(&print_env(&["--source", "local", "--name-by", "hostname"])));
    assert_code(&output, 78);
    let err = stderr(&output);
    assert!(err.contains("(--name-by hostname): the local source knows no host name (FQDN)"), "{err}");
    assert!(err.contains("--name-by ip"), "{err}");
}

#[test]
fn the_other_platforms_are_accepted_names() {
    for platform in ["kubernetes", "ecs", "nomad", "fly", "swarm", "compose", "rancher", "local", "auto"] {
        let output = run(rancher_boot().args(["--source", platform, "--help"]));
        assert_code(&output, 0);
    }
    let output = run(rancher_boot().args(["--source", "consul", "--node-basename", "x", "print-env"]));
    assert_code(&output, 64);
    assert!(
        stderr(&output).contains("auto, rancher, kubernetes, ecs, nomad, fly, swarm, compose, local"),
        "{}",
        stderr(&output)
    );
}

/// `--ip` as a network: the one local address in it, in a namespace whose addresses the test
/// knows; none in it is a 78 listing what there is; with `--service`, `--source swarm` asks
/// Docker's DNS nothing (a Swarm task with a health check is not in it before it is healthy).
#[test]
fn ip_as_a_network_names_the_local_address_in_it() {
    let lan = crate::support::lan::Lan::new(1);
    let net = format!(
        "{}/24",
        lan.ip(0).to_string().rsplit_once('.').map(|(head, _)| format!("{head}.0")).unwrap_or_default()
    );
    let in_host = |args: &[&str]| {
        let mut command = lan.command(0, crate::support::BIN);
        crate::support::clean_env(&mut command);
        command.args(args);
        run(&mut command)
    };
    let output = in_host(&[
        "--source",
        "local",
        "--ip",
        &net,
        "--service",
        "svc",
        "--peers",
        "none",
        "--node-basename",
        "n",
        "print-env",
    ]);
    assert_code(&output, 0);
    assert!(stdout(&output).contains(&format!("export NODE_IP='{}'", lan.ip(0))), "{}", stdout(&output));

    let output =
        in_host(&["--source", "local", "--ip", "10.99.0.0/16", "--peers", "none", "--node-basename", "n", "print-env"]);
    assert_code(&output, 78);
    assert!(
        stderr(&output).contains("none of this machine's addresses are in it")
            && stderr(&output).contains(&lan.ip(0).to_string()),
        "{}",
        stderr(&output)
    );

    let output = in_host(&[
        "--source",
        "swarm",
        "--ip",
        &net,
        "--service",
        "demo_hello",
        "--node-basename",
        "hello",
        "--peers",
        "none",
        "print-env",
    ]);
    assert_code(&output, 0);
    let out = stdout(&output);
    assert!(
        out.contains("export RANCHER_BOOT_PLATFORM='swarm'")
            && out.contains(&format!("export NODE_NAME='hello@{}'", lan.ip(0))),
        "{out}"
    );
    assert!(
        stderr(&output).contains("(swarm: --ip and --service given: no look at Docker's DNS), service demo_hello"),
        "{}",
        stderr(&output)
    );

    for bad in ["10.0.0.0/33", "10.0.0.0/0", "10.0.0.0/x", "nonsense"] {
        let output =
            in_host(&["--source", "local", "--ip", bad, "--peers", "none", "--node-basename", "n", "print-env"]);
        assert_code(&output, 64);
    }
}
