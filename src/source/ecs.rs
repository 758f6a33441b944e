//! The ecs source (PLATFORMS.md, "AWS ECS"): a stub until its issue lands. Detection is the
//! platform's environment signal, `ECS_CONTAINER_METADATA_URI_V4` (or v3's `ECS_CONTAINER_METADATA_URI`) set. (The built source
//! also checks that the endpoint answers container JSON: AWS CodeBuild sets the same variables.); identifying is exit 78, "not built yet".

use super::{Context, Identity, Platform};
use crate::exit::Fail;

/// The signal of detection's step (PLATFORMS.md), and its evidence.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    ["ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI"]
        .iter()
        .find_map(|name| ctx.var(name).map(|uri| format!("{name} is {uri}")))
}

pub fn identify(_ctx: &Context<'_>) -> Result<Identity, Fail> {
    Err(super::not_built(Platform::Ecs))
}
