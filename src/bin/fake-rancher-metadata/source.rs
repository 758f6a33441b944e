//! Where the answers come from, per caller: an answers file keyed by IP, or the mirror mode
//! that invents a container for whoever asks. Also the per-caller bookkeeping that the fault
//! knobs need (first request time, request count).
//!
//! Each request is looked up in a tree for its API version (`self/…`, `version`, and in mirror
//! mode `containers`, `services`, `stacks`): an answers file's trees are built once, when it is
//! loaded; mirror mode builds a fresh one per request. The rendering rules live in `render.rs`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Map, Value, json};

/// API versions the real server knows. `latest` is `2016-07-29`.
pub const VERSIONS: [&str; 4] = ["2015-07-25", "2015-12-19", "2016-07-29", "latest"];

/// The configured source of `self`.
#[derive(Debug)]
pub enum Source {
    /// IP (or `default`) → the caller's `self` object (`container`, `service`, `stack`, …).
    Answers(Answers),
    Mirror(Mirror),
}

#[derive(Debug)]
pub struct Mirror {
    pub service: String,
    pub stack: String,
    /// With `Some(name)`, `self/service` lists the addresses `name` resolves to.
    pub resolve: Option<String>,
}

/// What the server remembers about a caller (or, in mirror mode, about a resolved address).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// 1-based, in order of first appearance: the `N` of `STACK-SERVICE-N`.
    pub index: u64,
    /// First request (None for an address that only appeared in a DNS answer).
    pub first: Option<Instant>,
    /// Requests so far, this one included.
    pub requests: u64,
}

#[derive(Debug, Default)]
pub struct Callers {
    by_ip: HashMap<IpAddr, Caller>,
}

impl Callers {
    fn entry(&mut self, ip: IpAddr) -> &mut Caller {
        let next = self.by_ip.len() as u64 + 1;
        self.by_ip.entry(ip).or_insert(Caller { index: next, first: None, requests: 0 })
    }

    /// Count one request of `ip` and return its record.
    pub fn record(&mut self, ip: IpAddr, now: Instant) -> Caller {
        let caller = self.entry(ip);
        caller.first.get_or_insert(now);
        caller.requests += 1;
        *caller
    }

    /// Callers that made a request, in order of appearance.
    fn seen(&self) -> Vec<(IpAddr, u64)> {
        let mut seen: Vec<_> =
            self.by_ip.iter().filter(|(_, c)| c.first.is_some()).map(|(ip, c)| (*ip, c.index)).collect();
        seen.sort_by_key(|&(_, index)| index);
        seen
    }
}

/// An answers file: for each key (an IP address or `default`), the whole tree that `/{version}/…`
/// is looked up in, once per kind of API version.
#[derive(Debug)]
pub struct Answers {
    trees: HashMap<String, [Value; VERSION_KINDS]>,
}

/// API versions that differ in their trees (see `adapt_to_version`).
const VERSION_KINDS: usize = 3;

/// Which of the per-version trees `version` is answered from.
fn version_kind(version: &str) -> usize {
    match version {
        "2015-07-25" => 0,
        "2016-07-29" | "latest" => 2,
        _ => 1, // 2015-12-19, and any other: the tree as written
    }
}

impl Answers {
    /// The trees of every key of `map` (keyed by IP or `default`, each value a `self`).
    pub fn new(map: Map<String, Value>) -> Answers {
        let trees = map
            .into_iter()
            .map(|(key, own)| {
                let tree = json!({ "self": own, "version": "1" });
                let trees = ["2015-07-25", "2015-12-19", "2016-07-29"].map(|version| {
                    let mut tree = tree.clone();
                    adapt_to_version(&mut tree, version);
                    tree
                });
                (key, trees)
            })
            .collect();
        Answers { trees }
    }
}

/// Read and check an answers file: a JSON object whose keys are IP addresses (or `default`,
/// used for callers that have no entry) and whose values are objects.
pub fn load_answers(path: &Path) -> Result<Answers, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("failed to parse {}: {e}", path.display()))?;
    let Value::Object(map) = value else {
        return Err(format!("{}: the top level must be an object keyed by IP", path.display()));
    };
    for (key, value) in &map {
        if key != "default" && key.parse::<IpAddr>().is_err() {
            return Err(format!("{}: key {key:?} is neither an IP address nor \"default\"", path.display()));
        }
        if !value.is_object() {
            return Err(format!("{}: the value of {key:?} must be an object", path.display()));
        }
    }
    Ok(Answers::new(map))
}

impl Source {
    /// The whole tree that `/{version}/…` is looked up in for caller `ip`, or `None` when the
    /// caller is unknown (the real server then answers 404 to every path). An answers file's
    /// tree is borrowed; mirror mode's is built for this request.
    pub fn tree(&self, version: &str, ip: IpAddr, callers: &Mutex<Callers>) -> Option<Cow<'_, Value>> {
        match self {
            Source::Answers(answers) => {
                let trees = answers.trees.get(&ip.to_string()).or_else(|| answers.trees.get("default"))?;
                Some(Cow::Borrowed(&trees[version_kind(version)]))
            }
            Source::Mirror(mirror) => {
                let mut tree = mirror.tree(ip, callers);
                adapt_to_version(&mut tree, version);
                Some(Cow::Owned(tree))
            }
        }
    }
}

impl Mirror {
    fn tree(&self, ip: IpAddr, callers: &Mutex<Callers>) -> Value {
        // Resolve outside the lock: a slow DNS answer must not stall other callers.
        let resolved = self.resolve.as_deref().map(resolve);
        let mut callers = callers.lock().unwrap_or_else(|e| e.into_inner());
        let own_index = callers.entry(ip).index;
        let members: Vec<(IpAddr, u64)> = match resolved {
            Some(addresses) => addresses.into_iter().map(|a| (a, callers.entry(a).index)).collect(),
            None => callers.seen(),
        };
        let generation = callers.by_ip.len();
        drop(callers);

        let containers: Vec<Value> = members.iter().map(|&(a, i)| self.container(a, i)).collect();
        let container = self.container(ip, own_index);
        let service = self.service(&containers);
        let stack = self.stack();
        json!({
            "self": { "container": container, "service": service, "stack": stack },
            "containers": containers,
            "services": [service],
            "stacks": [stack],
            "version": generation.to_string(),
        })
    }

    fn container(&self, ip: IpAddr, index: u64) -> Value {
        let name = format!("{}-{}-{index}", self.stack, self.service);
        json!({
            "create_index": index,
            "dns": ["169.254.169.250"],
            "dns_search": [format!("{}.rancher.internal", self.stack.to_lowercase()), "rancher.internal"],
            "external_id": format!("{index:064x}"),
            "health_check": null,
            "health_state": "healthy",
            "host_uuid": uuid(0x4057, 1),
            "hostname": name,
            "ips": [ip.to_string()],
            "labels": {},
            "metadata_kind": "container",
            "name": name,
            "network_from_container_uuid": null,
            "ports": [],
            "primary_ip": ip.to_string(),
            "service_index": index.to_string(),
            "service_name": self.service,
            "service_uuid": uuid(0x5e41, 1),
            "stack_name": self.stack,
            "stack_uuid": uuid(0x57ac, 1),
            "start_count": 1,
            "state": "running",
            "system": false,
            "uuid": uuid(0xc047, index),
        })
    }

    fn service(&self, containers: &[Value]) -> Value {
        json!({
            "containers": containers,
            "create_index": 1,
            "expose": [],
            "external_ips": [],
            "fqdn": null,
            "global": false,
            "health_check": null,
            "hostname": null,
            "kind": "service",
            "labels": {},
            "links": {},
            "metadata": {},
            "metadata_kind": "service",
            "name": self.service,
            "ports": [],
            "primary_service_name": self.service,
            "scale": containers.len(),
            "sidekicks": [],
            "stack_name": self.stack,
            "stack_uuid": uuid(0x57ac, 1),
            "state": "active",
            "system": false,
            "uuid": uuid(0x5e41, 1),
            "vip": null,
        })
    }

    fn stack(&self) -> Value {
        json!({
            "environment_name": "Default",
            "environment_uuid": uuid(0xe4f1, 1),
            "metadata_kind": "stack",
            "name": self.stack,
            "services": [self.service],
            "system": false,
            "uuid": uuid(0x57ac, 1),
        })
    }
}

/// A fixed, readable UUID-shaped identifier.
fn uuid(kind: u16, n: u64) -> String {
    format!("{kind:04x}0000-0000-4000-8000-{n:012x}")
}

/// The addresses `name` resolves to through the system resolver, sorted and unique; none when
/// it does not resolve (the first container of a service).
fn resolve(name: &str) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> =
        (name, 0).to_socket_addrs().map(|it| it.map(|a| a.ip().to_canonical()).collect()).unwrap_or_default();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// Per-version differences of the real server: `2016-07-29` (and `latest`) lower-cases names;
/// `2015-07-25` lists a service's containers by name only.
fn adapt_to_version(tree: &mut Value, version: &str) {
    let Some(own) = tree.get_mut("self").and_then(Value::as_object_mut) else { return };
    match version {
        "2016-07-29" | "latest" => {
            for part in ["container", "service", "stack"] {
                if let Some(object) = own.get_mut(part) {
                    lower_names(object);
                    if let Some(Value::Array(items)) = object.get_mut("containers") {
                        items.iter_mut().for_each(lower_names);
                    }
                    if let Some(Value::Array(items)) = object.get_mut("services") {
                        for item in items.iter_mut() {
                            if let Value::String(s) = item {
                                *s = s.to_lowercase();
                            }
                        }
                    }
                }
            }
        }
        "2015-07-25" => {
            if let Some(Value::Array(items)) = own.get_mut("service").and_then(|s| s.get_mut("containers")) {
                for item in items.iter_mut() {
                    if let Some(name) = item.get("name").cloned() {
                        *item = name;
                    }
                }
            }
        }
        _ => {}
    }
}

fn lower_names(object: &mut Value) {
    for key in ["name", "hostname", "service_name", "stack_name", "primary_service_name"] {
        if let Some(Value::String(s)) = object.get_mut(key) {
            *s = s.to_lowercase();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror() -> Source {
        Source::Mirror(Mirror { service: "Hello".into(), stack: "Demo".into(), resolve: None })
    }

    #[test]
    fn mirror_answers_the_callers_own_address() {
        let callers = Mutex::new(Callers::default());
        let a: IpAddr = "10.42.0.5".parse().unwrap_or_else(|_| unreachable!());
        let b: IpAddr = "10.42.0.6".parse().unwrap_or_else(|_| unreachable!());
        let now = Instant::now();
        callers.lock().unwrap_or_else(|e| e.into_inner()).record(a, now);
        callers.lock().unwrap_or_else(|e| e.into_inner()).record(b, now);
        let mirror = mirror();
        let tree = mirror.tree("latest", b, &callers).unwrap_or_default();
        assert_eq!(tree["self"]["container"]["primary_ip"], "10.42.0.6");
        assert_eq!(tree["self"]["container"]["name"], "demo-hello-2");
        assert_eq!(tree["self"]["service"]["name"], "hello");
        assert_eq!(tree["self"]["service"]["containers"][0]["primary_ip"], "10.42.0.5");
        let old = mirror.tree("2015-12-19", b, &callers).unwrap_or_default();
        assert_eq!(old["self"]["container"]["name"], "Demo-Hello-2");
        let oldest = mirror.tree("2015-07-25", b, &callers).unwrap_or_default();
        assert_eq!(oldest["self"]["service"]["containers"][1], "Demo-Hello-2");
    }

    #[test]
    fn answers_fall_back_to_default_or_nothing() {
        let callers = Mutex::new(Callers::default());
        let mut map = Map::new();
        map.insert("10.0.0.1".into(), json!({"container": {"name": "a"}}));
        let source = Source::Answers(Answers::new(map.clone()));
        let other: IpAddr = "10.0.0.2".parse().unwrap_or_else(|_| unreachable!());
        assert!(source.tree("latest", other, &callers).is_none());
        map.insert("default".into(), json!({"container": {"name": "d"}}));
        let source = Source::Answers(Answers::new(map));
        let tree = source.tree("latest", other, &callers).unwrap_or_default();
        assert_eq!(tree["self"]["container"]["name"], "d");
    }
}
