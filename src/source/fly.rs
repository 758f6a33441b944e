//! The fly source (PLATFORMS.md, "Fly.io"): a stub until its issue lands. Detection is the
//! platform's environment signal, `FLY_APP_NAME` and `FLY_PRIVATE_IP` set; identifying is exit 78, "not built yet".

use super::{Context, Identity, Platform};
use crate::exit::Fail;

/// The signal of detection's step (PLATFORMS.md), and its evidence.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    let app = ctx.var("FLY_APP_NAME")?;
    let ip = ctx.var("FLY_PRIVATE_IP")?;
    Some(format!("FLY_APP_NAME is {app}, FLY_PRIVATE_IP {ip}"))
}

pub fn identify(_ctx: &Context<'_>) -> Result<Identity, Fail> {
    Err(super::not_built(Platform::Fly))
}
