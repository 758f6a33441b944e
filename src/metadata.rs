//! The Rancher metadata client: one `GET {url}/self/container` as JSON, retried with jittered
//! back-off until the deadline, and the validation of what comes back.
//!
//! The metadata service is often not ready when a container starts (no DNS name yet, 404 until
//! the server reloads, an empty 200, the IP assigned late), so every failure short of the deadline
//! is retried. Answers are judged by status code and by parsing, never by Content-Type or body
//! text. Each request is bounded (connect 2 s, whole request 5 s, body 64 KiB), follows no
//! redirect and uses no proxy. The retry loop is shared with peer discovery (`--wait-peers`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use serde_json::Value;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::cli::{DEFAULT_METADATA_URL, check_name};
use crate::env::Identity;
use crate::exit::{Exit, Fail};

/// What Rancher's own components use when the metadata name does not resolve.
pub const LINK_LOCAL_METADATA_URL: &str = "http://169.254.169.250/2016-07-29";

/// A DNS server that does not answer (Rancher's, early) must not hold an attempt for the C
/// library's 5 s: after this long the next attempt goes to the link-local address.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BODY_LIMIT: u64 = 64 * 1024;

/// Why one attempt failed: decides between exit 69 and 65 at the deadline.
#[derive(Debug)]
pub enum AttemptError {
    /// Nothing usable came back (network, timeout, 404, 5xx): retry; 69 at the deadline.
    Unavailable(anyhow::Error),
    /// The host name did not resolve: retry (also on the link-local address with the default URL).
    NameNotResolved(anyhow::Error),
    /// An answer came, but its content is not valid: retry; 65 at the deadline.
    Invalid(anyhow::Error),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Unavailable(e) | AttemptError::NameNotResolved(e) | AttemptError::Invalid(e) => {
                write!(f, "{e:#}")
            }
        }
    }
}

/// Full-jitter exponential back-off: a delay drawn from [0, min(cap, base * 2^n)].
///
/// Full jitter spreads a hundred containers that start together over the whole window instead of
/// retrying in lock-step. The 200 ms cap keeps a service that becomes ready in use within 250 ms
/// (SPEC section 13): the longest wait after T is one whole delay, then a request and the exec,
/// which need the remaining 50 ms. A 250 ms cap would leave them nothing.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    state: u64,
}

impl Backoff {
    pub const BASE: Duration = Duration::from_millis(50);
    pub const CAP: Duration = Duration::from_millis(200);

    pub fn new() -> Self {
        // Seeded from the clock and the pid: containers started in the same millisecond still differ.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Backoff::with_seed(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn with_seed(seed: u64) -> Self {
        Backoff { attempt: 0, state: seed | 1 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::BASE.saturating_mul(1 << self.attempt.min(16)).min(Self::CAP);
        self.attempt += 1;
        // xorshift64*: plenty for jitter, and no dependency.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let micros = ceiling.as_micros() as u64;
        Duration::from_micros(random % (micros + 1))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `attempt` until it succeeds or the deadline passes, one warning line per failure.
///
/// `what` names the thing being waited for ("metadata", "peers"); the attempt's error names the
/// URL or DNS name. At the deadline the exit is 65 if the last answer was invalid, else 69.
pub fn retry<T>(
    what: &str,
    started: Instant,
    deadline: Instant,
    mut attempt: impl FnMut(u32) -> Result<T, AttemptError>,
) -> Result<T, Fail> {
    let mut backoff = Backoff::new();
    let mut number = 0;
    loop {
        number += 1;
        let error = match attempt(number) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let elapsed = started.elapsed().as_secs_f64();
        let now = Instant::now();
        if now >= deadline {
            let exit = if matches!(error, AttemptError::Invalid(_)) { Exit::DataErr } else { Exit::Unavailable };
            return Err(Fail::new(
                exit,
                anyhow!("{what} unavailable: gave up after {number} attempts in {elapsed:.1}s; last error: {error}"),
            ));
        }
        log::warn!("{what} attempt {number} failed after {elapsed:.1}s: {error}");
        std::thread::sleep(backoff.next_delay().min(deadline - now));
    }
}

/// An HTTP client for metadata: no proxy, no redirects, bounded in time and size.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_resolve(Some(RESOLVE_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            // An answer is a few hundred bytes: ureq's 128 KiB defaults cost more to zero than the
            // whole request takes (half of a boot's instructions, measured with callgrind).
            .input_buffer_size(4 * 1024)
            .output_buffer_size(1024)
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), LiteralFirstResolver);
        Client { agent }
    }

    /// One `GET url` with `Accept: application/json`, bounded by `deadline` too. A 200 with an
    /// empty body (a JSON null) is `Ok(Value::Null)`.
    pub fn get_json(&self, url: &str, deadline: Instant) -> Result<Value, AttemptError> {
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
        let response = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .config()
            .timeout_global(Some(REQUEST_TIMEOUT.min(remaining)))
            .build()
            .call();
        let mut response = match response {
            Ok(response) => response,
            Err(e) if is_name_resolution_failure(&e) => {
                return Err(AttemptError::NameNotResolved(anyhow!(
                    "GET {url}: host name does not resolve ({})",
                    describe_http_error(&e)
                )));
            }
            Err(e) => return Err(AttemptError::Unavailable(anyhow!("GET {url}: {}", describe_http_error(&e)))),
        };
        let status = response.status();
        if status != 200 {
            return Err(AttemptError::Unavailable(anyhow!("GET {url}: HTTP {}", status.as_u16())));
        }
        let body = response.body_mut().with_config().limit(BODY_LIMIT).read_to_vec().map_err(|e| {
            AttemptError::Unavailable(anyhow!("GET {url}: reading the answer: {}", describe_http_error(&e)))
        })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| {
            AttemptError::Invalid(anyhow!("GET {url}: answer is not JSON ({e}): {}", escape_prefix(&body)))
        })
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// ureq reports a name that resolves to nothing as `HostNotFound`, a lookup that hangs as a
/// resolve timeout, but a getaddrinfo failure (NXDOMAIN, no DNS server) as the I/O error std
/// makes of it, which has no errno and no dedicated kind: std's message is the only mark it has.
fn is_name_resolution_failure(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::HostNotFound | ureq::Error::Timeout(ureq::Timeout::Resolve) => true,
        ureq::Error::Io(io) => {
            io.raw_os_error().is_none() && io.to_string().starts_with("failed to lookup address information")
        }
        _ => false,
    }
}

/// Takes an IP literal as it is, on the calling thread. ureq's own resolver starts a thread for
/// every lookup once a timeout is set, even for an IP literal, and that thread costs a boot more
/// than the request. A name still goes to ureq's resolver: its thread is what bounds a lookup
/// that hangs (the C library's resolver waits its own `timeout`, 5 s by default) by our deadline.
/// Such a thread may outlive the boot; `--init` passes on any signal it would take.
#[derive(Debug)]
struct LiteralFirstResolver;

impl Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri.authority().ok_or(ureq::Error::HostNotFound)?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = host.parse::<IpAddr>() else {
            return DefaultResolver::default().resolve(uri, config, timeout);
        };
        let mut addresses = self.empty();
        addresses.push(SocketAddr::new(ip, authority.port_u16().unwrap_or(80)));
        Ok(addresses)
    }
}

fn describe_http_error(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) => crate::exec::describe_io_error(io),
        ureq::Error::BodyExceedsLimit(limit) => format!("answer larger than {limit} bytes"),
        other => other.to_string(),
    }
}

/// At most 80 bytes of untrusted text, escaped, for an error message.
pub fn escape_prefix(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    let mut shown: String = text.escape_debug().collect();
    if bytes.len() > 80 {
        shown.push('…');
    }
    format!("\"{shown}\"")
}

/// One metadata key to ask, `{base}/{key}`. With the default base URL, a name that does not
/// resolve sends the next attempt to the link-local address Rancher's own agents use, and back,
/// alternating until one answers. Shared by the identity and the `self/service` peer requests.
#[derive(Debug)]
pub struct Endpoint {
    primary: String,
    fallback: Option<String>,
    next_is_fallback: bool,
}

impl Endpoint {
    pub fn new(base_url: &str, key: &str) -> Endpoint {
        Endpoint {
            primary: format!("{base_url}/{key}"),
            fallback: (base_url == DEFAULT_METADATA_URL).then(|| format!("{LINK_LOCAL_METADATA_URL}/{key}")),
            next_is_fallback: false,
        }
    }

    /// One attempt (see [`Client::get_json`]), at whichever URL is next.
    pub fn get_json(&mut self, client: &Client, deadline: Instant) -> Result<Value, AttemptError> {
        let url = match (&self.fallback, self.next_is_fallback) {
            (Some(fallback), true) => fallback,
            _ => &self.primary,
        };
        let answer = client.get_json(url, deadline);
        self.next_is_fallback = self.fallback.is_some()
            && !self.next_is_fallback
            && matches!(answer, Err(AttemptError::NameNotResolved(_)));
        answer
    }
}

/// Asks `{base}/self/container` who this container is, until `deadline`.
pub fn fetch_identity(base_url: &str, started: Instant, deadline: Instant) -> Result<Identity, Fail> {
    let client = Client::new();
    let mut endpoint = Endpoint::new(base_url, "self/container");
    let identity = retry("metadata", started, deadline, |_| {
        parse_container(&endpoint.get_json(&client, deadline)?).map_err(AttemptError::Invalid)
    })?;
    log::debug!("metadata says: {identity:?}");
    Ok(identity)
}

/// Validates a `self/container` answer (any API version: unknown fields are ignored).
pub fn parse_container(answer: &Value) -> anyhow::Result<Identity> {
    let text = |key: &str| -> anyhow::Result<Option<&str>> {
        match answer.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.strip_suffix('\n').unwrap_or(s))),
            Some(other) => Err(anyhow!("{key} is not a string: {}", escape_prefix(other.to_string().as_bytes()))),
        }
    };
    if !answer.is_object() && !answer.is_null() {
        anyhow::bail!("self/container is not an object: {}", escape_prefix(answer.to_string().as_bytes()));
    }
    let ip = text("primary_ip")?.ok_or_else(|| anyhow!("empty primary_ip"))?;
    let ip = check_ip(ip)?;
    let service =
        text("service_name")?.ok_or_else(|| anyhow!("empty service_name (is the container part of a service?)"))?;
    check_name(service).context("service_name")?;
    let stack = text("stack_name")?;
    if let Some(stack) = stack {
        check_name(stack).context("stack_name")?;
    }
    let container = text("name")?;
    if let Some(container) = container {
        check_name(container).context("name")?;
    }
    Ok(Identity {
        ip,
        service: service.to_string(),
        stack: stack.map(str::to_string),
        container: container.map(str::to_string),
    })
}

/// An address other nodes can reach: std's parser (no leading zeros, no short forms), and not
/// unspecified, loopback, link-local, multicast or broadcast. An IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`) is judged, and returned, as the IPv4 address it maps: otherwise
/// `::ffff:127.0.0.1` would pass, and the node would needlessly speak IPv6 distribution.
pub fn check_ip(text: &str) -> anyhow::Result<IpAddr> {
    let ip: IpAddr =
        text.parse().map_err(|_| anyhow!("primary_ip {} is not an IP address", escape_prefix(text.as_bytes())))?;
    let ip = ip.to_canonical();
    if !reachable(ip) {
        anyhow::bail!(
            "primary_ip {ip} is not an address other nodes can reach (unspecified, loopback, link-local, multicast or broadcast)"
        );
    }
    Ok(ip)
}

/// Whether other nodes can reach `ip` (see [`check_ip`]); used for local addresses too.
pub fn reachable(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let special = match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_multicast(),
    };
    !(ip.is_unspecified() || ip.is_loopback() || special)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_default_url_has_a_link_local_fallback() {
        let endpoint = Endpoint::new(DEFAULT_METADATA_URL, "self/service");
        assert_eq!(endpoint.fallback.as_deref(), Some("http://169.254.169.250/2016-07-29/self/service"));
        let endpoint = Endpoint::new("http://127.0.0.1:9/latest", "self/service");
        assert_eq!(endpoint.primary, "http://127.0.0.1:9/latest/self/service");
        assert!(endpoint.fallback.is_none());
    }

    #[test]
    fn a_full_answer() {
        let answer = json!({
            "primary_ip": "10.42.96.65", "service_name": "my-hello-service", "stack_name": "demo",
            "name": "demo-my-hello-service-1", "metadata_kind": "container", "ips": ["10.42.96.65"], "labels": {}
        });
        let id = parse_container(&answer).unwrap();
        assert_eq!(id.ip.to_string(), "10.42.96.65");
        assert_eq!(id.service, "my-hello-service");
        assert_eq!(id.stack.as_deref(), Some("demo"));
        assert_eq!(id.container.as_deref(), Some("demo-my-hello-service-1"));
    }

    #[test]
    fn empty_and_missing_answers() {
        for answer in [Value::Null, json!({}), json!({"primary_ip": ""}), json!({"primary_ip": null})] {
            assert_eq!(parse_container(&answer).unwrap_err().to_string(), "empty primary_ip");
        }
        let err = parse_container(&json!({"primary_ip": "10.0.0.1"})).unwrap_err();
        assert!(err.to_string().contains("service_name"), "{err}");
    }

    #[test]
    fn one_trailing_newline_is_trimmed_and_no_more() {
        let id = parse_container(&json!({"primary_ip": "10.0.0.1\n", "service_name": "web\n"})).unwrap();
        assert_eq!(id.service, "web");
        assert!(parse_container(&json!({"primary_ip": "10.0.0.1\n\n", "service_name": "web"})).is_err());
        assert!(parse_container(&json!({"primary_ip": " 10.0.0.1", "service_name": "web"})).is_err());
    }

    #[test]
    fn addresses_that_are_refused() {
        for bad in [
            "10.42.1",
            "999.1.1.1",
            "010.0.0.1",
            "0.0.0.0",
            "127.0.0.1",
            "169.254.1.1",
            "::",
            "::1",
            "fe80::1",
            "<html>",
            "10.0.0.1 x",
        ] {
            assert!(check_ip(bad).is_err(), "{bad}");
        }
        for good in ["10.42.96.65", "172.17.0.2", "fd00::5", "2001:db8::1"] {
            assert!(check_ip(good).is_ok(), "{good}");
        }
        assert_eq!(check_ip("::ffff:10.0.0.1").unwrap().to_string(), "10.0.0.1", "mapped addresses are unmapped");
    }

    #[test]
    fn bad_values_are_shown_escaped() {
        let err = check_ip("a\nb\u{1b}[31m").unwrap_err().to_string();
        assert!(err.contains(r"a\nb\u{1b}[31m"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn wrong_types_are_invalid_not_panics() {
        assert!(parse_container(&json!([1, 2])).is_err());
        assert!(parse_container(&json!({"primary_ip": 10, "service_name": "x"})).is_err());
        assert!(parse_container(&json!("10.0.0.1")).is_err());
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let mut a = Backoff::with_seed(1);
        let mut b = Backoff::with_seed(2);
        let da: Vec<_> = (0..20).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..20).map(|_| b.next_delay()).collect();
        assert_ne!(da, db, "two seeds must not retry in lock-step");
        assert!(da.iter().chain(&db).all(|d| *d <= Backoff::CAP));
        assert!(da[0] <= Backoff::BASE);
        // Over many draws the delays spread across the window rather than clustering at one end.
        let mut c = Backoff::with_seed(3);
        let late: Vec<_> = (0..1000).map(|_| c.next_delay()).skip(10).collect();
        let below_half = late.iter().filter(|d| **d < Backoff::CAP / 2).count();
        assert!((300..700).contains(&below_half), "{below_half}");
    }

    #[test]
    fn retry_gives_up_at_the_deadline_with_the_right_code() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(200);
        let fail = retry("x", start, deadline, |_| -> Result<(), _> { Err(AttemptError::Invalid(anyhow!("bad"))) })
            .unwrap_err();
        assert_eq!(fail.exit, Exit::DataErr);
        let fail = retry("thing", start, Instant::now(), |_| -> Result<(), _> {
            Err(AttemptError::Unavailable(anyhow!("down")))
        })
        .unwrap_err();
        assert_eq!(fail.exit, Exit::Unavailable);
        assert!(fail.to_string().contains("thing unavailable: gave up after 1 attempts"), "{fail}");
        assert!(fail.to_string().contains("last error: down"));
    }
}
