//! The swarm source (docs/platforms.md, "Docker Swarm"): a task's overlay address, named by the PTR
//! record Docker's DNS keeps for it, `<service>.<slot>.<task id>.<network>`; the service is its
//! first label (`<stack>_<service>` when deployed as a stack), the peer query `tasks.<service>`.
//! The ingress and `docker_gwbridge` addresses (the latter holds the default route, which is why
//! the local source names a task wrongly) have no PTR record. The look is [`super::docker`]'s.

use super::{Context, Identity, Platform, docker};
use crate::exit::Fail;

pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    docker::identify_as(ctx, Platform::Swarm)
}
