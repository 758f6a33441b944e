//! The swarm source (docs/platforms.md, "Docker Swarm"): a task's overlay address, named by the PTR
//! record Docker's DNS keeps for it, `<service>.<slot>.<task id>.<network>`; the service is its
//! first label (`<stack>_<service>` when deployed as a stack), the peer query `tasks.<service>`.
//! The ingress and `docker_gwbridge` addresses (the latter holds the default route, which is why
//! the local source names a task wrongly) have no PTR record. The look is [`super::docker`]'s.
//!
//! With both `--ip` (an address, or the overlay's subnet) and `--service`, nothing is asked:
//! Swarm puts a task that has a health check into its DNS (its PTR and `tasks.<service>`) only
//! once the check has passed, which the node can do only after the boot. Those two are what a
//! stack with a health check gives (`RANCHER_BOOT_IP: 10.0.8.0/24`, `RANCHER_BOOT_SERVICE:
//! "{{.Service.Name}}"`).

use super::{Context, Identity, Platform, docker};
use crate::exit::Fail;

pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    if let (Some(ip), Some(service)) = (ctx.config.ip, ctx.config.service.as_deref()) {
        return Ok(Identity {
            platform: Platform::Swarm,
            ip,
            service: service.to_string(),
            peer_query: Some(format!("tasks.{service}")),
            host_name: None,
            extras: Vec::new(),
            evidence: "--ip and --service given: no look at Docker's DNS".to_string(),
        });
    }
    docker::identify_as(ctx, Platform::Swarm)
}
