//! `--source auto` (the default): the first platform whose signal is there, in docs/platforms.md's
//! order. Steps 1–4 read only the environment and files (ECS's may make its one request to its
//! own metadata endpoint); step 5 may ask DNS for the metadata host name once, bounded; step 6
//! asks Docker's embedded DNS for the PTR of the local addresses; step 7 is the local source.
//!
//! Each platform file says whether its signal is there (`detect`); this file only keeps the
//! order and hands over to the first that answers, with what its detection fetched
//! ([`Detected`]), so that nothing is kept aside between detecting and identifying. A platform
//! named by `--source` never comes here.

use serde_json::Value;

use super::{Context, Identity, Platform, docker, ecs, fly, identify_as, kubernetes, local, nomad, rancher};
use crate::exit::Fail;

/// What a platform's signal showed: why, and what detection already fetched from the platform
/// (ECS's container answer), handed to its source so that identifying does not ask again.
#[derive(Debug)]
pub struct Detected {
    pub evidence: String,
    pub fetched: Option<Value>,
}

impl Detected {
    /// A signal that fetched nothing: only its evidence.
    fn because(evidence: String) -> Detected {
        Detected { evidence, fetched: None }
    }
}

type Detect = fn(&Context<'_>) -> Option<Detected>;

/// Steps 1–5: the platforms known from their signal alone, in order.
const BY_SIGNAL: [(Platform, Detect); 5] = [
    (Platform::Fly, |ctx| fly::detect(ctx).map(Detected::because)),
    (Platform::Ecs, ecs::detect),
    (Platform::Nomad, |ctx| nomad::detect(ctx).map(Detected::because)),
    (Platform::Kubernetes, |ctx| kubernetes::detect(ctx).map(Detected::because)),
    (Platform::Rancher, |ctx| rancher::detect(ctx).map(Detected::because)),
];

/// The first of steps 1–5 whose signal is there, and what it showed.
fn by_signal(ctx: &Context<'_>) -> Option<(Platform, Detected)> {
    BY_SIGNAL.iter().find_map(|(platform, detect)| detect(ctx).map(|found| (*platform, found)))
}

/// Steps 1–7: the identity from the first platform found.
pub fn detect(ctx: &Context<'_>) -> Result<Identity, Fail> {
    if let Some((platform, found)) = by_signal(ctx) {
        log::debug!("--source auto: {platform}, because {}", found.evidence);
        return match (platform, found.fetched) {
            (Platform::Ecs, fetched) => ecs::identify_with(ctx, fetched),
            (platform, _) => identify_as(platform, ctx),
        };
    }
    if let Some(identity) = docker::look(ctx, docker::Bound::Auto, None)? {
        log::debug!("--source auto: {}, because {}", identity.platform, identity.evidence);
        return Ok(identity);
    }
    log::debug!("--source auto: local, no platform's signal is there");
    let identity = local::identify(ctx)?;
    docker::warn_if_off_the_tasks_network(ctx, &identity);
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::config;
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::path::Path;

    /// Which of steps 1–5 answers for these variables and files.
    fn detected(vars: &[(&str, &str)], files: &[&str]) -> Option<Platform> {
        let config = config(&["rancher-boot", "--", "/opt/app/bin/hello"]);
        let vars: BTreeMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        let env = move |name: &str| vars.get(name).cloned();
        let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        let read = move |path: &Path| files.iter().any(|f| Path::new(f) == path).then(|| "default\n".to_string());
        let ctx = Context::injected(&config, &env, &read);
        by_signal(&ctx).map(|(platform, _)| platform)
    }

    const FLY: [(&str, &str); 2] = [("FLY_APP_NAME", "hello"), ("FLY_PRIVATE_IP", "fdaa:2:686c:a7b:465:821d:76c3:2")];
    const NOMAD: (&str, &str) = ("NOMAD_ALLOC_ID", "5c8a7a2f-0000-0000-0000-000000000000");
    const KUBERNETES: (&str, &str) = ("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    const RANCHER: (&str, &str) = ("RANCHER_METADATA_URL", "http://rancher-metadata/latest");
    const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

    #[test]
    fn each_signal_alone() {
        assert_eq!(detected(&FLY, &[]), Some(Platform::Fly));
        assert_eq!(detected(&[NOMAD], &[]), Some(Platform::Nomad));
        assert_eq!(detected(&[KUBERNETES], &[]), Some(Platform::Kubernetes));
        assert_eq!(detected(&[], &[SERVICE_ACCOUNT]), Some(Platform::Kubernetes));
        assert_eq!(detected(&[RANCHER], &[]), Some(Platform::Rancher));
    }

    #[test]
    fn the_first_step_wins() {
        let all = [FLY[0], FLY[1], NOMAD, KUBERNETES, RANCHER];
        assert_eq!(detected(&all, &[SERVICE_ACCOUNT]), Some(Platform::Fly));
        assert_eq!(detected(&all[2..], &[SERVICE_ACCOUNT]), Some(Platform::Nomad));
        assert_eq!(detected(&all[3..], &[SERVICE_ACCOUNT]), Some(Platform::Kubernetes));
        assert_eq!(detected(&all[4..], &[SERVICE_ACCOUNT]), Some(Platform::Kubernetes));
        assert_eq!(detected(&all[4..], &[]), Some(Platform::Rancher));
    }

    #[test]
    fn half_a_signal_is_none() {
        // Fly needs both variables; an empty variable is not set. (Rancher's name look is not
        // reached: RANCHER_METADATA_URL decides first, so no test here asks DNS.)
        assert_eq!(detected(&[FLY[0], RANCHER], &[]), Some(Platform::Rancher));
        assert_eq!(detected(&[FLY[1], ("NOMAD_ALLOC_ID", ""), RANCHER], &[]), Some(Platform::Rancher));
    }
}
