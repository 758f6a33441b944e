//! The Fly.io source from a machine's variables: the node is `basename@<FLY_PRIVATE_IP as
//! inet:ntoa/1 writes it>`, the query `<app>.internal`, IPv6 distribution in ERL_AFLAGS unless a
//! `-proto_dist` is given, and a warning when an inherited RELEASE_NODE (Fly's env.sh.eex sets
//! one) is not the node rancher-boot exports.

use serde_json::Value;

use crate::support::{assert_code, rancher_boot, run, stderr, stdout};

fn boot(vars: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = rancher_boot();
    for name in ["ERL_FLAGS", "ERL_ZFLAGS", "DNS_CLUSTER_QUERY"] {
        command.env_remove(name);
    }
    command.envs([
        ("FLY_APP_NAME", "hello-fly"),
        ("FLY_MACHINE_ID", "e784079b449283"),
        ("FLY_REGION", "ams"),
        ("FLY_IMAGE_REF", "registry.fly.io/hello-fly:deployment-01HZ0000000000000000000000"),
    ]);
    command.envs(vars.iter().copied());
    command.args(["--node-basename", "hello", "--peers", "none"]).args(args).args(["print-env", "--format", "json"]);
    run(&mut command)
}

fn exports(output: &std::process::Output) -> Value {
    assert_code(output, 0);
    serde_json::from_str(&stdout(output)).expect("print-env JSON")
}

#[test]
fn the_private_ip_names_the_node_and_the_app_names_the_service() {
    let output = boot(&[("FLY_PRIVATE_IP", "fdaa:2:686c:a7b:465:821d:76c3:2")], &[]);
    let e = exports(&output);
    assert_eq!(e["RANCHER_BOOT_PLATFORM"], "fly");
    assert_eq!(e["NODE_NAME"], "hello@fdaa:2:686c:a7b:465:821d:76c3:2");
    assert_eq!(e["SERVICE_NAME"], "hello-fly");
    assert_eq!(e["ERL_AFLAGS"], "-proto_dist inet6_tcp");
    assert!(
        stderr(&output).contains("(fly: FLY_PRIVATE_IP of app hello-fly, machine e784079b449283)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_non_canonical_private_ip_is_written_as_erlang_writes_it() {
    let e = exports(&boot(&[("FLY_PRIVATE_IP", "FDAA:0002:686C:0A7B:0000:0000:76C3:0002")], &[]));
    assert_eq!(e["NODE_NAME"], "hello@fdaa:2:686c:a7b::76c3:2");
    assert_eq!(e["NODE_IP"], "fdaa:2:686c:a7b::76c3:2");
}

#[test]
fn a_private_ip_that_is_not_an_address_is_a_78_naming_it() {
    let output = boot(&[("FLY_PRIVATE_IP", "fdaa:2:686c::zz")], &[]);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("FLY_PRIVATE_IP"), "{}", stderr(&output));
}

#[test]
fn the_query_is_the_app_dot_internal_even_with_service() {
    let mut command = rancher_boot();
    command.env_remove("DNS_CLUSTER_QUERY");
    command.envs([("FLY_APP_NAME", "hello-fly"), ("FLY_PRIVATE_IP", "fdaa::5")]);
    // Asked on loopback only: a closed port, so the look fails at once and the boot goes on.
    let dns = crate::support::closed_port().to_string();
    command.args([
        "--node-basename",
        "hello",
        "--service",
        "web",
        "--dns-server",
        &dns,
        "print-env",
        "--format",
        "json",
    ]);
    let e = exports(&run(&mut command));
    assert_eq!(e["SERVICE_NAME"], "web");
    assert_eq!(e["DNS_CLUSTER_QUERY"], "hello-fly.internal");
}

#[test]
fn proto_dist_is_added_only_when_none_is_given() {
    let ip = ("FLY_PRIVATE_IP", "fdaa::5");
    assert_eq!(exports(&boot(&[ip, ("ERL_AFLAGS", "+S 2")], &[]))["ERL_AFLAGS"], "+S 2 -proto_dist inet6_tcp");
    for given in ["ERL_AFLAGS", "ERL_FLAGS", "ERL_ZFLAGS"] {
        let e = exports(&boot(&[ip, (given, "-proto_dist inet6_tls")], &[]));
        assert!(e.get("ERL_AFLAGS").is_none(), "{given}: {e}");
    }
}

#[test]
fn an_inherited_release_node_that_differs_is_warned_about() {
    let ip = ("FLY_PRIVATE_IP", "fdaa::5");
    let output = boot(&[ip, ("RELEASE_NODE", "hello-fly-01HZ@fdaa::5")], &[]);
    assert_eq!(exports(&output)["RELEASE_NODE"], "hello@fdaa::5");
    let err = stderr(&output);
    assert!(err.contains("warn") && err.contains("\"hello-fly-01HZ@fdaa::5\"") && err.contains("env.sh.eex"), "{err}");
    let output = boot(&[ip, ("RELEASE_NODE", "hello@fdaa::5")], &[]);
    assert!(!stderr(&output).contains("RELEASE_NODE"), "{}", stderr(&output));
}
