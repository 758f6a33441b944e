//! The kubernetes source (PLATFORMS.md, "Kubernetes"): a stub until its issue lands. Detection is the
//! platform's environment signal, `KUBERNETES_SERVICE_HOST` set (the kubelet always injects it), or the service-account
//! `namespace` file exists; identifying is exit 78, "not built yet".

use super::{Context, Identity, Platform};
use crate::exit::Fail;

/// The file every pod with a service account has.
pub const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The signal of detection's step (PLATFORMS.md), and its evidence.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    if let Some(host) = ctx.var("KUBERNETES_SERVICE_HOST") {
        return Some(format!("KUBERNETES_SERVICE_HOST is {host}"));
    }
    ctx.read(SERVICE_ACCOUNT_NAMESPACE).map(|_| format!("{SERVICE_ACCOUNT_NAMESPACE} exists"))
}

pub fn identify(_ctx: &Context<'_>) -> Result<Identity, Fail> {
    Err(super::not_built(Platform::Kubernetes))
}
