//! The one HTTP client: `GET` a metadata URL, bounded, and read its answer as JSON. Rancher's
//! metadata service (identity and `self/service` peers) and ECS's task metadata endpoint both
//! ask through it.
//!
//! This file owns the request and what its failures mean to the retry loop ([`AttemptError`]):
//! no proxy, no redirect, connect 2 s, whole request 5 s (and never past the caller's deadline),
//! body 64 KiB; a status other than 200 is `Unavailable` (with a [`Status`] its callers can test), a name that does not resolve
//! `NameNotResolved`, a body that is not JSON `Invalid`. Answers are judged by status and by
//! parsing, never by Content-Type or body text. Host names are resolved by [`crate::dns`], not
//! the C library (see [`OwnResolver`]). Left to others: which URL to ask and what the JSON must
//! hold (the sources), and how long to keep asking ([`crate::wait`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::Value;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::wait::AttemptError;

/// A DNS server that does not answer (Rancher's, early) must not hold an attempt for the C
/// library's 5 s: after this long the attempt ends (Rancher's source then tries the link-local
/// address).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BODY_LIMIT: u64 = 64 * 1024;
/// How many addresses ureq's `ResolvedSocketAddrs` holds (its `MAX_ADDRS`, not exported).
const RESOLVED_MAX: usize = 16;

/// The HTTP client for metadata: no proxy, no redirects, bounded in time and size.
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
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), OwnResolver);
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
            let status = Status { url: url.to_string(), code: status.as_u16() };
            return Err(AttemptError::Unavailable(anyhow::Error::new(status)));
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

/// An answer whose status is not 200, as an error a caller can tell apart by its code (ECS's
/// 404 means "not ECS", not "not yet") without reading the message.
#[derive(Debug)]
pub struct Status {
    url: String,
    pub code: u16,
}

impl Status {
    /// Whether `error` is an answer with the status `code`.
    pub fn is(error: &anyhow::Error, code: u16) -> bool {
        error.downcast_ref::<Status>().is_some_and(|status| status.code == code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GET {}: HTTP {}", self.url, self.code)
    }
}

impl std::error::Error for Status {}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// [`OwnResolver`] says `HostNotFound` for a name without addresses and a resolve timeout for a
/// look that failed (no answer, a server failure); either way the name did not resolve.
fn is_name_resolution_failure(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::HostNotFound | ureq::Error::Timeout(ureq::Timeout::Resolve))
}

/// Takes an IP literal as it is; a name goes through rancher-boot's own resolver
/// ([`crate::dns::host_addresses`]: /etc/hosts, then DNS as resolv.conf says), on the calling
/// thread, bounded by [`RESOLVE_TIMEOUT`] and the request's own timeout.
///
/// Why not the C library's: ureq runs getaddrinfo on a thread per request once a timeout is set,
/// and that thread can outlive the boot; and musl's resolver, which the static binary has, waits
/// out its whole timeout when the network cannot be reached (in an empty network namespace,
/// `sendto` says ENETUNREACH), where glibc fails at once. Ours fails at once under either, so a
/// metadata name that cannot resolve costs an attempt, not 2 s, on every libc.
#[derive(Debug)]
struct OwnResolver;

impl Resolver for OwnResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri.authority().ok_or(ureq::Error::HostNotFound)?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let mut addresses = self.empty();
        if let Ok(ip) = host.parse::<IpAddr>() {
            addresses.push(SocketAddr::new(ip, port));
            return Ok(addresses);
        }
        let bound = match timeout.after {
            ureq::unversioned::transport::time::Duration::Exact(after) => after.min(RESOLVE_TIMEOUT),
            ureq::unversioned::transport::time::Duration::NotHappening => RESOLVE_TIMEOUT,
        };
        let found = match crate::dns::host_addresses(host, None, Instant::now() + bound) {
            Ok(found) => found,
            Err(crate::dns::Miss::NoAddresses(why)) => {
                log::debug!("{host}: {why}");
                return Err(ureq::Error::HostNotFound);
            }
            Err(crate::dns::Miss::Failed(e)) => {
                log::debug!("{host}: {e:#}");
                return Err(ureq::Error::Timeout(ureq::Timeout::Resolve));
            }
        };
        // IPv4 first, as getaddrinfo sorts for a host without IPv6 routes; ureq tries them in order.
        for ip in found.into_iter().take(RESOLVED_MAX) {
            addresses.push(SocketAddr::new(ip, port));
        }
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
