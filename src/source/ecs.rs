//! The AWS ECS source: the task metadata endpoint v4 (v3) that the ECS agent names in
//! `ECS_CONTAINER_METADATA_URI_V4` (`ECS_CONTAINER_METADATA_URI`).
//!
//! `GET ${URI}` is this container's JSON: its address is in `Networks[]`, the `awsvpc` one with
//! the lowest `AttachmentIndex`, `IPv4Addresses[0]` (`IPv6Addresses[0]` when it has no IPv4). In
//! `bridge` or `host` mode that address is the Docker bridge's or the instance's, not one a peer
//! can be named by: a 78 naming `--ip`, never a wrong name. `GET ${URI}/task` gives the service:
//! `ServiceName` (EC2, agent >= 1.63.1), else the task definition's `Family` (Fargate).
//! AWS CodeBuild sets the same variables and answers something else: an answer that is not
//! container JSON with `Networks` is "not ECS" under `--source auto`.
//! Peers come only from `--peer-query` (a Cloud Map name): this source names no query.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::Value;

use super::detect::Detected;
use super::{Context, Identity, Platform};
use crate::cli::check_name;
use crate::exit::{Exit, Fail};
use crate::http::{self, Client, escape_prefix};
use crate::wait::{self, AttemptError};

/// The variables the ECS agent sets, v4 first.
const URI_VARIABLES: [&str; 2] = ["ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI"];

/// Under `--source auto`, an endpoint that refuses, times out or fails (5xx) is asked this long.
const AUTO_WAIT: Duration = Duration::from_secs(2);

/// The endpoint's variable and URI.
fn endpoint(ctx: &Context<'_>) -> Option<(&'static str, String)> {
    URI_VARIABLES.iter().find_map(|name| ctx.var(name).map(|uri| (*name, uri.trim_end_matches('/').to_string())))
}

/// One request, judged: container JSON is `Ok`; a 200 that is not, or a 404, is
/// `Invalid` (not ECS: AWS CodeBuild sets the same variables); anything else `Unavailable`.
fn ask_container(client: &Client, uri: &str, deadline: Instant) -> Result<Value, AttemptError> {
    match client.get_json(uri, deadline) {
        Ok(answer) if is_container(&answer) => Ok(answer),
        Ok(answer) => Err(AttemptError::Invalid(anyhow!(
            "GET {uri}: the answer is not ECS container JSON (no Networks list): {}",
            escape_prefix(answer.to_string().as_bytes())
        ))),
        Err(AttemptError::Unavailable(e)) if http::Status::is(&e, 404) => Err(AttemptError::Invalid(e)),
        Err(e) => Err(e),
    }
}

/// Step 2 of `--source auto`: the variable is set and its endpoint answers container JSON,
/// which is handed on to [`identify_with`] so that identifying does not ask again. Unreachable
/// endpoints are asked for at most 2 s, then detection goes on with a warning.
pub fn detect(ctx: &Context<'_>) -> Option<Detected> {
    let (name, uri) = endpoint(ctx)?;
    let client = Client::new();
    let deadline = (Instant::now() + AUTO_WAIT).min(ctx.deadline);
    let asked = wait::within(name, deadline, || match ask_container(&client, &uri, deadline) {
        Ok(answer) => Ok(Some(answer)),
        Err(AttemptError::Invalid(e)) => {
            log::debug!("{name} is set, but not ECS: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    });
    match asked {
        Ok(Some(answer)) => {
            Some(Detected { evidence: format!("{name} answers container JSON"), fetched: Some(answer) })
        }
        Ok(None) => None,
        Err(last) => {
            log::warn!("{name} is set, but its endpoint did not answer within {AUTO_WAIT:?} ({last}); not ECS");
            None
        }
    }
}

/// The container's address (`--ip` wins without a look at the networks) and the service.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    identify_with(ctx, None)
}

/// [`identify`], from the container answer detection got if it got one.
pub fn identify_with(ctx: &Context<'_>, detected: Option<Value>) -> Result<Identity, Fail> {
    let Some((name, uri)) = endpoint(ctx) else {
        return Err(Fail::new(
            Exit::Config,
            anyhow!(
                "cannot use --source ecs: neither ECS_CONTAINER_METADATA_URI_V4 nor ECS_CONTAINER_METADATA_URI is set"
            ),
        ));
    };
    let client = Client::new();
    let container = match detected {
        Some(answer) => answer,
        None => wait::retry("ECS metadata", ctx.started, ctx.deadline, |_| {
            match client.get_json(&uri, ctx.deadline) {
                // Without Networks the answer is judged below: a 78, not a wait.
                Ok(answer) if answer.is_object() => Ok(answer),
                Ok(answer) => Err(AttemptError::Invalid(anyhow!("GET {uri}: not a JSON object: {answer}"))),
                Err(e) => Err(e),
            }
        })?,
    };
    let (ip, evidence) = match ctx.config.ip {
        Some(ip) => (ip, "--ip given".to_string()),
        None => container_address(&container)?,
    };
    let task_uri = format!("{uri}/task");
    let task =
        wait::retry("ECS task metadata", ctx.started, ctx.deadline, |_| client.get_json(&task_uri, ctx.deadline))?;
    let label_family = container
        .pointer("/Labels/com.amazonaws.ecs.task-definition-family")
        .and_then(Value::as_str)
        .map(|family| (family.to_string(), "the task-definition-family label"));
    let (service, from) = match task_service(&task).or(label_family) {
        Some(found) => found,
        None => match &ctx.config.service {
            Some(service) => (service.clone(), "--service"),
            None => {
                return Err(Fail::new(
                    Exit::Config,
                    anyhow!(
                        "cannot name the service: GET {task_uri}: the task has neither ServiceName nor Family; set --service"
                    ),
                ));
            }
        },
    };
    check_name(&service).map_err(|e| {
        Fail::new(Exit::Config, e.context(format!("cannot use ECS {from} as the service name (set --service)")))
    })?;
    log::debug!("ecs: {ip} from {name} ({evidence}), service {service} from {from}");
    Ok(Identity {
        platform: Platform::Ecs,
        ip,
        service,
        peer_query: None,
        host_name: None,
        extras: Vec::new(),
        evidence: format!("{evidence}, service from {from}"),
    })
}

/// Whether a 200 answer is ECS container JSON (and not, say, CodeBuild's).
pub fn is_container(answer: &Value) -> bool {
    answer.get("Networks").is_some_and(Value::is_array)
}

/// The container's address from its JSON, and the evidence for the info line.
pub fn container_address(answer: &Value) -> Result<(IpAddr, String), Fail> {
    let Some(networks) = answer.get("Networks").and_then(Value::as_array) else {
        return Err(Fail::new(
            Exit::Config,
            anyhow!(
                "cannot find the node's address: the ECS container metadata has no Networks list; give it with --ip"
            ),
        ));
    };
    let mode = |n: &Value| n.get("NetworkMode").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let index = |n: &Value| n.get("AttachmentIndex").and_then(Value::as_u64).unwrap_or(0);
    let first = |n: &Value, key: &str| -> Option<IpAddr> {
        n.get(key)?.as_array()?.iter().filter_map(Value::as_str).find_map(|text| text.parse().ok())
    };
    let awsvpc = networks.iter().filter(|n| mode(n) == "awsvpc").min_by_key(|n| index(n));
    if let Some(network) = awsvpc {
        let (ip, family) = match (first(network, "IPv4Addresses"), first(network, "IPv6Addresses")) {
            (Some(ip), _) => (ip, "IPv4"),
            (None, Some(ip)) => (ip, "IPv6"),
            (None, None) => {
                return Err(Fail::new(
                    Exit::Config,
                    anyhow!(
                        "cannot find the node's address: the ECS awsvpc network (AttachmentIndex {}) has no IPv4Addresses \
                 or IPv6Addresses; \
                         give the node's address with --ip",
                        index(network)
                    ),
                ));
            }
        };
        let evidence = format!("awsvpc {family} of attachment {} of {}", index(network), networks.len());
        return Ok((ip, evidence));
    }
    let modes: Vec<String> = networks.iter().map(mode).map(|m| if m.is_empty() { "?".into() } else { m }).collect();
    let seen = networks.iter().find_map(|n| first(n, "IPv4Addresses").or_else(|| first(n, "IPv6Addresses")));
    let seen = seen.map(|ip| format!(" (its address {ip} is not one other hosts reach)")).unwrap_or_default();
    Err(Fail::new(
        Exit::Config,
        anyhow!(
            "cannot find the node's address: the ECS task runs in network mode {}{seen}; use networkMode awsvpc, or give the instance's \
             address with --ip",
            if modes.is_empty() { "none".to_string() } else { modes.join(", ") }
        ),
    ))
}

/// The service from the task JSON: `ServiceName`, else `Family`; and which one it was.
pub fn task_service(task: &Value) -> Option<(String, &'static str)> {
    let text = |key: &str| task.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    text("ServiceName").map(|s| (s, "ServiceName")).or_else(|| text("Family").map(|s| (s, "Family")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// AWS's documented container answer (task metadata endpoint v4), abridged.
    fn documented() -> Value {
        json!({"DockerId":"ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66","Name":"curl",
            "DockerName":"ecs-curltest-24-curl-cca48e8dcadd97805600",
            "Labels":{"com.amazonaws.ecs.cluster":"default","com.amazonaws.ecs.task-definition-family":"curltest"},
            "DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Type":"NORMAL",
            "Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.100"],"AttachmentIndex":0,
                "MACAddress":"0e:9e:32:c7:48:85","IPv4SubnetCIDRBlock":"10.0.2.0/24",
                "PrivateDNSName":"ip-10-0-2-100.us-west-2.compute.internal",
                "SubnetGatewayIpv4Address":"10.0.2.1/24"}]})
    }

    fn ip(answer: &Value) -> String {
        container_address(answer)
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_else(|f| format!("{} {:#}", f.exit.code(), f.error))
    }

    #[test]
    fn the_documented_answer_is_awsvpc_ipv4() {
        assert!(is_container(&documented()));
        assert_eq!(ip(&documented()), "10.0.2.100");
    }

    #[test]
    fn the_lowest_attachment_index_wins() {
        let answer = json!({"Networks":[
            {"NetworkMode":"awsvpc","IPv4Addresses":["10.0.3.7"],"AttachmentIndex":1},
            {"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.100"],"AttachmentIndex":0}]});
        assert_eq!(ip(&answer), "10.0.2.100");
    }

    #[test]
    fn dual_stack_takes_ipv4_and_ipv6_only_without_it() {
        let dual = json!({"Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":["10.0.2.100"],
            "IPv6Addresses":["2600:1f13:4d9:e611:9009:ac97:1ab4:17d1"],"AttachmentIndex":0}]});
        assert_eq!(ip(&dual), "10.0.2.100");
        let v6 = json!({"Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":[],
            "IPv6Addresses":["2600:1f13:4d9:e611:9009:ac97:1ab4:17d1"],"AttachmentIndex":0}]});
        assert_eq!(ip(&v6), "2600:1f13:4d9:e611:9009:ac97:1ab4:17d1");
    }

    #[test]
    fn bridge_and_host_modes_are_refused_naming_ip() {
        for mode in ["bridge", "host"] {
            let answer = json!({"Networks":[{"NetworkMode":mode,"IPv4Addresses":["172.17.0.2"]}]});
            let text = ip(&answer);
            assert!(text.starts_with("78 ") && text.contains(mode) && text.contains("--ip"), "{text}");
            assert!(text.contains("172.17.0.2"), "{text}");
        }
    }

    #[test]
    fn an_answer_without_networks_is_not_a_container() {
        // CodeBuild's endpoint answers with something else under the same variables.
        let codebuild = json!({"Name":"build","ImageID":"sha256:0","Labels":{}});
        assert!(!is_container(&codebuild));
        assert!(!is_container(&json!([])) && !is_container(&Value::Null));
        let text = ip(&codebuild);
        assert!(text.starts_with("78 ") && text.contains("Networks") && text.contains("--ip"), "{text}");
    }

    #[test]
    fn service_is_service_name_else_family() {
        let ec2 = json!({"Cluster":"default","Family":"curltest","Revision":"26","ServiceName":"hello-svc"});
        assert_eq!(task_service(&ec2), Some(("hello-svc".into(), "ServiceName")));
        let fargate = json!({"Cluster":"default","Family":"curltest","Revision":"26"});
        assert_eq!(task_service(&fargate), Some(("curltest".into(), "Family")));
        assert_eq!(task_service(&json!({"Cluster":"default"})), None);
    }
}
