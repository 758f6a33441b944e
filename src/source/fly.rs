//! The Fly.io source: `FLY_APP_NAME` and `FLY_PRIVATE_IP` (the machine's IPv6 on the private 6PN
//! network). IP = `FLY_PRIVATE_IP`, service = `FLY_APP_NAME`, peer query = `<app>.internal`
//! (an AAAA record per started machine, at Fly's DNS `fdaa::3`); `--service` leaves the query.
//! The node is IPv6: `ERL_AFLAGS` gets `-proto_dist inet6_tcp` (crate::erl), and the address is
//! written the way Erlang writes it, whatever case or zeros the variable holds.

use std::net::IpAddr;

use anyhow::anyhow;

use super::{Context, Identity, Platform};
use crate::cli::check_name;
use crate::exit::{Exit, Fail};

/// Step 1 of `--source auto`: both variables set.
pub fn detect(ctx: &Context<'_>) -> Option<String> {
    let app = ctx.var("FLY_APP_NAME")?;
    let ip = ctx.var("FLY_PRIVATE_IP")?;
    Some(format!("FLY_APP_NAME is {app}, FLY_PRIVATE_IP {ip}"))
}

/// IP = `FLY_PRIVATE_IP` (unless `--ip`), service = `FLY_APP_NAME`, query `<app>.internal`.
pub fn identify(ctx: &Context<'_>) -> Result<Identity, Fail> {
    let app = ctx.var("FLY_APP_NAME").ok_or_else(|| {
        Fail::new(
            Exit::Config,
            anyhow!("cannot use --source fly: FLY_APP_NAME is not set; set --service and --peer-query"),
        )
    })?;
    check_name(&app).map_err(|e| Fail::new(Exit::Config, e.context("cannot use FLY_APP_NAME as the service name")))?;
    let (ip, evidence) = match (ctx.config.ip, ctx.var("FLY_PRIVATE_IP")) {
        (Some(ip), _) => (ip, "--ip given".to_string()),
        (None, Some(text)) => (private_ip(&text)?, format!("FLY_PRIVATE_IP of app {app}")),
        (None, None) => {
            return Err(Fail::new(
                Exit::Config,
                anyhow!("cannot use --source fly: FLY_PRIVATE_IP is not set; give the address with --ip"),
            ));
        }
    };
    let machine = ctx.var("FLY_MACHINE_ID").map(|id| format!(", machine {id}")).unwrap_or_default();
    Ok(Identity {
        platform: Platform::Fly,
        ip,
        peer_query: Some(peer_query(&app)),
        service: app,
        host_name: None,
        extras: Vec::new(),
        evidence: format!("{evidence}{machine}"),
    })
}

/// `FLY_PRIVATE_IP` parsed; any text form Rust reads (upper case, leading zeros) is accepted, and
/// the name is then built from the canonical form.
pub fn private_ip(text: &str) -> Result<IpAddr, Fail> {
    text.trim().parse().map_err(|_| {
        Fail::new(
            Exit::Config,
            anyhow!("cannot use FLY_PRIVATE_IP {text:?}: it is not an IP address; give the address with --ip"),
        )
    })
}

/// The peer query of app `app`.
pub fn peer_query(app: &str) -> String {
    format!("{app}.internal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erl::ntoa;

    #[test]
    fn the_private_ip_is_written_as_erlang_writes_it() {
        for text in [
            "fdaa:2:686c:a7b:465:821d:76c3:2",
            "FDAA:0002:686C:0A7B:0465:821D:76C3:0002",
            " fdaa:2:686c:a7b:465:821d:76c3:2\n",
        ] {
            assert_eq!(ntoa(private_ip(text).unwrap()), "fdaa:2:686c:a7b:465:821d:76c3:2", "{text:?}");
        }
        assert_eq!(ntoa(private_ip("fdaa:0:0:0:0:0:0:3").unwrap()), "fdaa::3");
    }

    #[test]
    fn a_private_ip_that_is_not_one_names_the_variable() {
        let fail = private_ip("fdaa::zz").unwrap_err();
        assert_eq!(fail.exit, Exit::Config);
        assert!(format!("{:#}", fail.error).contains("FLY_PRIVATE_IP"));
    }

    #[test]
    fn the_query_is_the_app_dot_internal() {
        assert_eq!(peer_query("hello-fly"), "hello-fly.internal");
    }
}
