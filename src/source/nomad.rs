//! The nomad source (PLATFORMS.md, "Nomad"): a stub until its issue lands. Detection is the
//! platform's environment signal, `NOMAD_ALLOC_ID` set; identifying is exit 78, "not built yet".

use super::{Context, Identity, Platform};
use crate::exit::Fail;

/// The signal of detection's step (PLATFORMS.md), and its evidence.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    ctx.var("NOMAD_ALLOC_ID").map(|id| format!("NOMAD_ALLOC_ID is {id}"))
}

pub fn identify(_ctx: &Context<'_>) -> Result<Identity, Fail> {
    Err(super::not_built(Platform::Nomad))
}
