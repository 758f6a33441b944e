//! `--user USER[:GROUP]`: who the program runs as, looked up before anything is written, and
//! the drop to that user just before the hand-over, the way gosu and su-exec do it.
//!
//! What this module owns: parsing the spec, the passwd and group look-ups (a user that does not
//! exist is a 78 before anything runs), the order of the drop (supplementary groups, then the
//! group, then the user: each later step takes away the right to the earlier one) and the check
//! that it held. It leaves where the drop happens to `boot.rs` (after the templates, the state
//! file and the cookie are written; before the exec, or before `--init` spawns the program).
//!
//! The traps their trackers list, and what is done here:
//! - supplementary groups: set to the user's own (`getgrouplist`), never root's left over;
//! - `HOME`: the passwd entry's, so Erlang finds `$HOME/.erlang.cookie`;
//! - a numeric id without a passwd entry: allowed, as su-exec and Docker allow it: the group is
//!   the same number (never root's group 0 kept by accident), no supplementary group but that
//!   one, and `HOME` is `/`, which is what Docker gives `--user 1234` without an entry;
//! - a name that is not in passwd (or a group not in group): 78, and nothing runs.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};

use crate::exit::{Exit, Fail};
use crate::fail;

/// The user the program runs as, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The user's name, or the number as given when passwd has no entry for it.
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Every group the user is in, `gid` first.
    pub groups: Vec<Gid>,
    /// From the passwd entry; `/` for a numeric id without one.
    pub home: PathBuf,
}

impl Target {
    /// `rabbitmq (uid 101, gid 104, groups 104)`: for the log.
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(ToString::to_string).collect();
        format!("{} (uid {}, gid {}, groups {})", self.name, self.uid, self.gid, groups.join(","))
    }
}

/// Checks the shape of `USER[:GROUP]` (the look-up waits for the boot, which may be a dry run).
pub fn check_spec(spec: &str) -> anyhow::Result<()> {
    let (user, group) = split(spec);
    if user.is_empty() || group == Some("") {
        anyhow::bail!("cannot use --user {spec:?}: expected USER or USER:GROUP (names or numeric ids)");
    }
    if spec.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\0') {
        anyhow::bail!(
            "cannot use --user {:?}: it holds whitespace or a control character",
            spec.escape_debug().to_string()
        );
    }
    Ok(())
}

fn split(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    }
}

fn numeric(text: &str) -> Option<u32> {
    text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse().ok()).flatten()
}

/// Looks `USER[:GROUP]` up in passwd and group. A name that is not there is a 78.
pub fn resolve(spec: &str) -> Result<Target, Fail> {
    let (user, group) = split(spec);
    let lookup_failed =
        |what: &str, e: nix::Error| fail!(Exit::Config, "cannot read {what} for --user {spec:?}: {}", e.desc());
    let entry = match numeric(user) {
        Some(uid) => User::from_uid(Uid::from_raw(uid)).map_err(|e| lookup_failed("passwd", e))?,
        None => User::from_name(user).map_err(|e| lookup_failed("passwd", e))?,
    };
    let (name, uid, mut gid, home) = match (&entry, numeric(user)) {
        (Some(pw), _) => (pw.name.clone(), pw.uid, pw.gid, pw.dir.clone()),
        (None, Some(uid)) => (user.to_string(), Uid::from_raw(uid), Gid::from_raw(uid), PathBuf::from("/")),
        (None, None) => {
            return Err(fail!(
                Exit::Config,
                "cannot run as --user (RANCHER_BOOT_USER) {user:?}: no such user in /etc/passwd; nothing was run \
                 (give an existing name, or a numeric uid)"
            ));
        }
    };
    if let Some(group) = group {
        gid = match numeric(group) {
            Some(gid) => Gid::from_raw(gid),
            None => match Group::from_name(group).map_err(|e| lookup_failed("group", e))? {
                Some(entry) => entry.gid,
                None => {
                    return Err(fail!(
                        Exit::Config,
                        "cannot run as --user (RANCHER_BOOT_USER) {spec:?}: no such group {group:?} in /etc/group; nothing was run"
                    ));
                }
            },
        };
    }
    // The user's supplementary groups, with the primary one first (getgrouplist adds it).
    let groups = match &entry {
        Some(pw) => {
            let c_name = CString::new(pw.name.as_bytes())
                .map_err(|_| fail!(Exit::Config, "cannot run as --user {spec:?}: the name holds a NUL byte"))?;
            let mut groups = nix::unistd::getgrouplist(&c_name, gid).map_err(|e| lookup_failed("group", e))?;
            groups.retain(|g| *g != gid);
            groups.insert(0, gid);
            groups
        }
        None => vec![gid],
    };
    Ok(Target { name, uid, gid, groups, home })
}

/// Drops to `target`: supplementary groups, group, user, in that order; then checks that root
/// cannot be taken back. Already that user (a rootless container): nothing to do.
pub fn drop_to(target: &Target) -> Result<(), Fail> {
    let (uid, euid, gid) = (Uid::current(), Uid::effective(), Gid::current());
    if !euid.is_root() {
        let groups = nix::unistd::getgroups().unwrap_or_default();
        if uid == target.uid
            && euid == target.uid
            && gid == target.gid
            && groups.iter().all(|g| target.groups.contains(g))
        {
            return Ok(());
        }
        return Err(fail!(
            Exit::Config,
            "cannot run as --user {}: rancher-boot runs as uid {euid}, not root; run it as root \
             (the image's USER) or drop --user",
            target.name
        ));
    }
    let failed = |step: &str, e: nix::Error| {
        fail!(Exit::Config, "cannot run as --user {}: {step} failed: {}", target.name, e.desc())
    };
    nix::unistd::setgroups(&target.groups).map_err(|e| failed("setgroups", e))?;
    nix::unistd::setgid(target.gid).map_err(|e| failed("setgid", e))?;
    nix::unistd::setuid(target.uid).map_err(|e| failed("setuid", e))?;
    if !target.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(fail!(
            Exit::Config,
            "cannot run as --user {}: root could be taken back after the drop",
            target.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        for good in ["rabbitmq", "rabbitmq:rabbitmq", "1000", "1000:1000", "app:0"] {
            assert!(check_spec(good).is_ok(), "{good}");
        }
        for bad in ["", ":x", "x:", "a b", "a\n"] {
            assert!(check_spec(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn root_and_numeric_ids() {
        let root = resolve("root").expect("root is in every passwd");
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert_eq!(root.groups.first(), Some(&Gid::from_raw(0)));
        let nobody = resolve("4242123").expect("a numeric id needs no entry");
        assert_eq!((nobody.uid.as_raw(), nobody.gid.as_raw()), (4242123, 4242123));
        assert_eq!(nobody.groups, vec![Gid::from_raw(4242123)]);
        assert_eq!(nobody.home, PathBuf::from("/"));
        let grouped = resolve("4242123:7").expect("numeric group");
        assert_eq!(grouped.gid.as_raw(), 7);
        assert_eq!(grouped.groups, vec![Gid::from_raw(7)]);
    }

    #[test]
    fn unknown_names_are_configuration_errors() {
        let fail = resolve("no-such-user-rb").unwrap_err();
        assert_eq!(fail.exit, Exit::Config);
        assert!(fail.to_string().contains("no such user"), "{fail}");
        let fail = resolve("root:no-such-group-rb").unwrap_err();
        assert!(fail.to_string().contains("no such group"), "{fail}");
    }
}
