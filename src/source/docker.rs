//! Docker's embedded DNS (`127.0.0.11`): what Swarm and Compose have in common. Not built yet:
//! the look finds nothing, so detection goes on to the local source.

use super::{Context, Identity};
use crate::exit::Fail;

/// How long a look may retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `--source auto`: briefly, then the next step.
    Auto,
    /// `--source swarm` or `compose`: to the deadline.
    #[allow(dead_code)] // until the Docker sources are built
    Deadline,
}

/// The identity a task's or a compose container's PTR gives, if any.
pub fn look(_ctx: &Context<'_>, _bound: Bound) -> Result<Option<Identity>, Fail> {
    Ok(None)
}

/// Under `--source auto`, after falling through to the local source on Docker's DNS.
pub fn warn_if_off_the_tasks_network(_ctx: &Context<'_>, _identity: &Identity) {}
