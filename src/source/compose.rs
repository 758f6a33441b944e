//! The compose source (PLATFORMS.md, "Docker Compose"): the container's address on its network,
//! named by the PTR record Docker's DNS keeps for it, `<project>_<service>_<n>.<project>_<network>`
//! (docker-compose v1) or `<project>-<service>-<n>.<network>` (Compose v2); the service is the
//! service part, which is also the peer query (Docker's DNS answers it with every replica). The
//! look is [`super::docker`]'s.

use super::docker::{self, Bound};
use super::{Context, Identity, Platform};
use crate::exit::Fail;

/// Detection's step 6 for this platform alone (detection itself asks once for both).
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    docker::look(ctx, Bound::Auto, None)
        .ok()
        .flatten()
        .filter(|identity| identity.platform == Platform::Compose)
        .map(|identity| identity.evidence)
}

/// Asks until the deadline; nothing of the shape is a 78 naming `--ip`.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let found = docker::look(ctx, Bound::Deadline, Some(Platform::Compose))?;
    // A named source's look finds the identity or fails; `None` cannot come back.
    found.ok_or_else(|| crate::fail!(crate::exit::Exit::Config, "no address found; set --ip (RANCHER_BOOT_IP)"))
}
