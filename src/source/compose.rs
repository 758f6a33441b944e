//! The compose source (docs/platforms.md, "Docker Compose"): the container's address on its
//! network, named by the PTR record Docker's DNS keeps for it,
//! `<project>_<service>_<n>.<project>_<network>` (docker-compose v1) or
//! `<project>-<service>-<n>.<project>_<network>` (Compose v2, whose networks are named
//! `<project>_<network>` as v1's are); the service is the service part, which is also the peer
//! query (Docker's DNS answers it with every replica). The look is [`super::docker`]'s.

use super::{Context, Identity, Platform, docker};
use crate::exit::Fail;

pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    docker::identify_as(ctx, Platform::Compose)
}
