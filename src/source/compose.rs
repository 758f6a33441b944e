//! The compose source (PLATFORMS.md, "Docker Compose"): not built yet.

use super::{Context, Identity, Platform};
use crate::exit::Fail;

pub fn detect(_ctx: &Context<'_>) -> Option<String> {
    None
}

pub fn identify(_ctx: &Context<'_>) -> Result<Identity, Fail> {
    Err(super::not_built(Platform::Compose))
}
