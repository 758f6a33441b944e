//! The ECS source against an in-process stand-in for the task metadata endpoint v4, serving
//! AWS's documented answers (the developer guide's examples of `${ECS_CONTAINER_METADATA_URI_V4}`
//! and `.../task`) and the variations of docs/platforms.md: two networks, dual-stack, IPv6 only, bridge
//! mode, no `ServiceName` (Fargate), no `Networks`, a CodeBuild-like answer, a 500 then JSON.

use serde_json::Value;

use crate::support::{MetadataServer, Reply, assert_code, closed_port, rancher_boot, run, stderr, stdout};

/// AWS's documented container answer, abridged.
const CONTAINER: &str = r#"{"DockerId":"ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66","Name":"curl",
 "DockerName":"ecs-curltest-24-curl-cca48e8dcadd97805600",
 "Labels":{"com.amazonaws.ecs.cluster":"default","com.amazonaws.ecs.container-name":"curl",
  "com.amazonaws.ecs.task-definition-family":"curltest","com.amazonaws.ecs.task-definition-version":"24"},
 "DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Type":"NORMAL",
 "Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.100"],"AttachmentIndex":0,
  "MACAddress":"0e:9e:32:c7:48:85","IPv4SubnetCIDRBlock":"10.0.2.0/24",
  "PrivateDNSName":"ip-10-0-2-100.us-west-2.compute.internal","SubnetGatewayIpv4Address":"10.0.2.1/24"}]}"#;

/// AWS's documented task answer (EC2), abridged, with the pause container; `ServiceName` added
/// as agents from 1.63.1 on EC2 send it.
const TASK_EC2: &str = r#"{"Cluster":"default","TaskARN":"arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c",
 "Family":"curltest","Revision":"26","ServiceName":"hello-svc","DesiredStatus":"RUNNING","KnownStatus":"RUNNING",
 "LaunchType":"EC2","Containers":[{"Name":"~internal~ecs~pause","Type":"CNI_PAUSE",
  "Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.61"],"AttachmentIndex":0}]}]}"#;

/// Fargate's: no `ServiceName`.
const TASK_FARGATE: &str = r#"{"Cluster":"arn:aws:ecs:us-west-2:111122223333:cluster/default","TaskARN":"arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3",
 "Family":"curltest","Revision":"3","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","LaunchType":"FARGATE"}"#;

/// The stand-in: `/v4/<id>` is the container, `/v4/<id>/task` the task; `first` replies to the
/// first request instead, when given.
fn endpoint(container: &'static str, task: &'static str, first: Option<Reply>) -> MetadataServer {
    MetadataServer::start(move |n, path| match (n, &first) {
        (1, Some(reply)) => reply.clone(),
        _ if path.ends_with("/task") => Reply::ok(task),
        _ if path.starts_with("/v4/") => Reply::ok(container),
        _ => Reply::not_found(),
    })
}

/// `print-env --format json` with the endpoint's variable set, and `args`.
fn boot(server: &MetadataServer, args: &[&str]) -> std::process::Output {
    let mut command = rancher_boot();
    command.env("ECS_CONTAINER_METADATA_URI_V4", format!("http://{}/v4/ea32192c8553", server.addr));
    command.args(["--node-basename", "hello", "--timeout", "3s"]).args(args).args(["print-env", "--format", "json"]);
    run(&mut command)
}

fn exports(output: &std::process::Output) -> Value {
    assert_code(output, 0);
    serde_json::from_str(&stdout(output)).expect("print-env JSON")
}

#[test]
fn the_documented_answers_name_the_node_by_its_awsvpc_address() {
    let server = endpoint(CONTAINER, TASK_EC2, None);
    let output = boot(&server, &[]);
    let e = exports(&output);
    assert_eq!(e["RANCHER_BOOT_PLATFORM"], "ecs");
    assert_eq!(e["NODE_NAME"], "hello@10.0.2.100");
    assert_eq!(e["SERVICE_NAME"], "hello-svc");
    assert!(e.get("DNS_CLUSTER_QUERY").is_none(), "{e}");
    assert!(e.get("ERL_AFLAGS").is_none(), "{e}");
    let err = stderr(&output);
    assert!(err.contains("no peers: the ecs source names no peer query; set --peer-query"), "{err}");
    // Detection's request is the identity's: one for the container, one for the task.
    assert_eq!(server.requests(), 2, "{err}");
}

#[test]
fn fargate_has_no_service_name_so_the_family_is_the_service() {
    let server = endpoint(CONTAINER, TASK_FARGATE, None);
    assert_eq!(exports(&boot(&server, &["--source", "ecs"]))["SERVICE_NAME"], "curltest");
}

#[test]
fn a_cloud_map_name_given_is_the_peer_query() {
    let server = endpoint(CONTAINER, TASK_EC2, None);
    let e = exports(&boot(&server, &["--peers", "none", "--peer-query", "hello.cluster.local"]));
    assert_eq!(e["NODE_NAME"], "hello@10.0.2.100");
    let server = endpoint(CONTAINER, TASK_EC2, None);
    // Asked on loopback only: a closed port, so the look fails at once and the boot goes on.
    let dns = closed_port().to_string();
    let output = boot(&server, &["--peer-query", "hello.cluster.invalid", "--dns-server", &dns]);
    assert_eq!(exports(&output)["DNS_CLUSTER_QUERY"], "hello.cluster.invalid");
}

#[test]
fn two_networks_take_the_lowest_attachment_index() {
    const TWO: &str = r#"{"Name":"app","Networks":[
        {"NetworkMode":"awsvpc","IPv4Addresses":["10.0.3.7"],"AttachmentIndex":1},
        {"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.100"],"AttachmentIndex":0}]}"#;
    let server = endpoint(TWO, TASK_EC2, None);
    assert_eq!(exports(&boot(&server, &[]))["NODE_NAME"], "hello@10.0.2.100");
}

#[test]
fn dual_stack_is_ipv4_and_ipv6_only_is_an_inet6_node() {
    const DUAL: &str = r#"{"Name":"app","Networks":[{"NetworkMode":"awsvpc","AttachmentIndex":0,
        "IPv4Addresses":["10.0.2.100"],"IPv6Addresses":["2600:1f13:4d9:e611:9009:ac97:1ab4:17d1"]}]}"#;
    const V6: &str = r#"{"Name":"app","Networks":[{"NetworkMode":"awsvpc","AttachmentIndex":0,
        "IPv6Addresses":["2600:1F13:04D9:E611:0:0:0:17D1"]}]}"#;
    let server = endpoint(DUAL, TASK_EC2, None);
    assert_eq!(exports(&boot(&server, &[]))["NODE_NAME"], "hello@10.0.2.100");
    let server = endpoint(V6, TASK_EC2, None);
    let e = exports(&boot(&server, &[]));
    assert_eq!(e["NODE_NAME"], "hello@2600:1f13:4d9:e611::17d1");
    assert_eq!(e["ERL_AFLAGS"], "-proto_dist inet6_tcp");
}

#[test]
fn bridge_and_host_modes_are_refused_unless_ip_is_given() {
    for mode in ["bridge", "host"] {
        let container: &'static str = Box::leak(
            format!(r#"{{"Name":"app","Networks":[{{"NetworkMode":"{mode}","IPv4Addresses":["172.17.0.2"]}}]}}"#)
                .into_boxed_str(),
        );
        let server = endpoint(container, TASK_EC2, None);
        let output = boot(&server, &[]);
        assert_code(&output, 78);
        let err = stderr(&output);
        assert!(err.contains(&format!("network mode {mode}")) && err.contains("--ip"), "{err}");
        let server = endpoint(container, TASK_EC2, None);
        assert_eq!(exports(&boot(&server, &["--ip", "192.0.2.10"]))["NODE_NAME"], "hello@192.0.2.10");
    }
}

#[test]
fn an_answer_without_networks_is_not_ecs_under_auto_and_a_78_when_named() {
    // AWS CodeBuild sets the same variables; its endpoint answers something else.
    const CODEBUILD: &str = r#"{"Name":"build","ImageID":"sha256:0","Labels":{"codebuild":"1"}}"#;
    let server = endpoint(CODEBUILD, TASK_EC2, None);
    let output = boot(&server, &["--ip", "192.0.2.10", "--service", "svc"]);
    let e = exports(&output);
    assert_ne!(e["RANCHER_BOOT_PLATFORM"], "ecs", "{}", stderr(&output));
    assert_eq!(server.requests(), 1);
    let server = endpoint(CODEBUILD, TASK_EC2, None);
    let output = boot(&server, &["--source", "ecs"]);
    assert_code(&output, 78);
    let err = stderr(&output);
    assert!(err.contains("no Networks") && err.contains("--ip"), "{err}");
}

#[test]
fn a_404_is_not_ecs_under_auto() {
    let server = MetadataServer::start(|_, _| Reply::not_found());
    let e = exports(&boot(&server, &["--ip", "192.0.2.10", "--service", "svc"]));
    assert_ne!(e["RANCHER_BOOT_PLATFORM"], "ecs");
}

#[test]
fn an_endpoint_that_answers_500_then_json_is_waited_for() {
    for args in [&[][..], &["--source", "ecs"][..]] {
        let server = endpoint(CONTAINER, TASK_EC2, Some(Reply::Status(500, "agent starting".into())));
        let output = boot(&server, args);
        let e = exports(&output);
        assert_eq!(e["RANCHER_BOOT_PLATFORM"], "ecs", "{}", stderr(&output));
        assert_eq!(e["NODE_NAME"], "hello@10.0.2.100");
        assert_eq!(server.requests(), 3);
    }
}
