//! The swarm source (PLATFORMS.md, "Docker Swarm"): a task's overlay address, named by the PTR
//! record Docker's DNS keeps for it, `<service>.<slot>.<task id>.<network>`; the service is its
//! first label (`<stack>_<service>` when deployed as a stack), the peer query `tasks.<service>`.
//! The ingress and `docker_gwbridge` addresses (the latter holds the default route, which is why
//! the local source names a task wrongly) have no PTR record. The look is [`super::docker`]'s.

use super::docker::{self, Bound};
use super::{Context, Identity, Platform};
use crate::exit::Fail;

/// Detection's step 6 for this platform alone (detection itself asks once for both).
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    docker::look(ctx, Bound::Auto, None)
        .ok()
        .flatten()
        .filter(|identity| identity.platform == Platform::Swarm)
        .map(|identity| identity.evidence)
}

/// Asks until the deadline; nothing of the shape is a 78 naming `--ip`.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let found = docker::look(ctx, Bound::Deadline, Some(Platform::Swarm))?;
    // A named source's look finds the identity or fails; `None` cannot come back.
    found.ok_or_else(|| crate::fail!(crate::exit::Exit::Config, "no address found; set --ip (RANCHER_BOOT_IP)"))
}
