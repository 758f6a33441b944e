//! Peers at boot (SPEC section 5).
//!
//! Placeholder until DNS and metadata discovery land: every mode finds no peers. The interface is
//! the one the boot calls; its implementation follows.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::cli::PeerMode;
use crate::exit::Fail;

/// What to look up, and how long to wait.
#[derive(Debug)]
pub struct PeerQuery<'a> {
    pub mode: PeerMode,
    /// The DNS name (`--peer-query`, else the service name).
    pub name: &'a str,
    pub dns_server: Option<SocketAddr>,
    /// `--wait-peers N`: wait until at least N others are known.
    pub wait: usize,
    /// The metadata base URL, for `--peers metadata`.
    pub metadata_url: &'a str,
    /// This node's address, excluded from the answer.
    pub self_ip: IpAddr,
    pub started: Instant,
    pub deadline: Instant,
}

/// The other peers' addresses: sorted, unique, self excluded.
pub fn discover(query: &PeerQuery<'_>) -> Result<Vec<IpAddr>, Fail> {
    if query.mode != PeerMode::None {
        log::debug!("peer discovery is not built yet; no peers for {}", query.name);
    }
    Ok(Vec::new())
}
