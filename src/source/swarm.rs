//! The swarm source (PLATFORMS.md, "Docker Swarm"): not built yet.

use super::{Context, Identity, Platform};
use crate::exit::Fail;

pub fn detect(_ctx: &Context<'_>) -> Option<String> {
    None
}

pub fn identify(_ctx: &Context<'_>) -> Result<Identity, Fail> {
    Err(super::not_built(Platform::Swarm))
}
