//! Metadata peers: `GET {url}/self/service` as JSON, and the containers of it that can be peers.
//!
//! A peer is a container whose `state` is `running` or `starting` and whose `health_state` is not
//! `unhealthy` (a container without health check has none), with a valid `primary_ip` other than
//! ours. Entries that are names instead of objects (the `2015-07-25` API lists names) or that hold
//! no valid address are skipped with a debug line: one bad entry must not cost the others.
//! The request goes through [`metadata::Client`], so it has the same bounds as the identity
//! request, and with the default URL it alternates with the link-local address the same way.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use serde_json::Value;

use crate::metadata::{self, AttemptError, escape_prefix};

/// One request: the peers `self/service` lists, this node excluded.
pub(super) fn fetch(
    client: &metadata::Client,
    endpoint: &mut metadata::Endpoint,
    self_ip: IpAddr,
    deadline: Instant,
) -> Result<Vec<IpAddr>, AttemptError> {
    let answer = endpoint.get_json(client, deadline);
    let found = peers(&answer?).map_err(AttemptError::Invalid)?;
    Ok(found.into_iter().filter(|ip| *ip != self_ip).collect())
}

/// The peer addresses of a `self/service` answer (any API version), sorted and unique.
pub(super) fn peers(answer: &Value) -> anyhow::Result<BTreeSet<IpAddr>> {
    let Value::Object(service) = answer else {
        if answer.is_null() {
            anyhow::bail!("empty answer for self/service");
        }
        anyhow::bail!("self/service is not an object: {}", escape_prefix(answer.to_string().as_bytes()));
    };
    let containers = match service.get("containers") {
        None | Some(Value::Null) => return Ok(BTreeSet::new()),
        Some(Value::Array(containers)) => containers,
        Some(other) => {
            anyhow::bail!("self/service containers is not a list: {}", escape_prefix(other.to_string().as_bytes()))
        }
    };
    let mut found = BTreeSet::new();
    let mut names_only = 0;
    for entry in containers {
        match peer(entry) {
            Ok(ip) => {
                found.insert(ip);
            }
            Err(Skip::NameOnly) => names_only += 1,
            Err(Skip::Because(why)) => log::debug!("self/service: skipping {why}"),
        }
    }
    if names_only > 0 {
        log::debug!(
            "self/service lists {names_only} container{} by name only (API 2015-07-25); use a later API version \
             in --metadata-url to see their addresses",
            if names_only == 1 { "" } else { "s" }
        );
    }
    Ok(found)
}

enum Skip {
    NameOnly,
    Because(String),
}

/// The address of one `containers` entry, if it is a peer.
fn peer(entry: &Value) -> Result<IpAddr, Skip> {
    let Value::Object(container) = entry else {
        return Err(if entry.is_string() {
            Skip::NameOnly
        } else {
            Skip::Because(format!("an entry that is not a container: {}", escape_prefix(entry.to_string().as_bytes())))
        });
    };
    let field = |key: &str| container.get(key).and_then(Value::as_str).unwrap_or("");
    let name = escape_prefix(field("name").as_bytes());
    let state = field("state");
    if !matches!(state, "running" | "starting") {
        return Err(Skip::Because(format!("container {name}: state {}", escape_prefix(state.as_bytes()))));
    }
    if field("health_state") == "unhealthy" {
        return Err(Skip::Because(format!("container {name}: unhealthy")));
    }
    metadata::check_ip(field("primary_ip")).map_err(|e| Skip::Because(format!("container {name}: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(found: &BTreeSet<IpAddr>) -> String {
        found.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn running_and_starting_containers_that_are_not_unhealthy() {
        let answer = json!({
            "name": "web", "scale": 9, "metadata_kind": "service",
            "containers": [
                {"name": "c1", "primary_ip": "10.42.0.9", "state": "running", "health_state": "healthy"},
                {"name": "c2", "primary_ip": "10.42.0.2", "state": "starting", "health_state": "initializing"},
                {"name": "c3", "primary_ip": "10.42.0.3", "state": "running", "health_state": null},
                {"name": "c4", "primary_ip": "10.42.0.4", "state": "stopped", "health_state": "healthy"},
                {"name": "c5", "primary_ip": "10.42.0.5", "state": "running", "health_state": "unhealthy"},
                {"name": "c6", "primary_ip": "10.42.0.6", "state": "stopping"},
                {"name": "c7", "primary_ip": "10.42.1", "state": "running"},
                {"name": "c8", "primary_ip": "", "state": "running"},
                {"name": "c9", "state": "running"},
                {"name": "c10", "primary_ip": "10.42.0.10", "state": "running", "extra": {"x": 1}},
                {"name": "c11", "primary_ip": "10.42.0.9", "state": "running"},
                "demo-web-12",
                42,
                {"name": "c13", "primary_ip": "10.42.0.13"}
            ]
        });
        assert_eq!(shown(&peers(&answer).unwrap()), "10.42.0.2 10.42.0.3 10.42.0.9 10.42.0.10");
    }

    #[test]
    fn a_service_without_containers_has_no_peers() {
        assert!(peers(&json!({"name": "web"})).unwrap().is_empty());
        assert!(peers(&json!({"name": "web", "containers": null})).unwrap().is_empty());
        assert!(peers(&json!({"name": "web", "containers": []})).unwrap().is_empty());
        assert!(peers(&json!({"containers": ["web-1", "web-2"]})).unwrap().is_empty());
    }

    #[test]
    fn answers_that_are_not_a_service_are_invalid() {
        assert!(peers(&Value::Null).unwrap_err().to_string().contains("empty"));
        assert!(peers(&json!([1])).is_err());
        assert!(peers(&json!("web")).is_err());
        assert!(peers(&json!({"containers": {"a": 1}})).is_err());
    }
}
