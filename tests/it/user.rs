//! `--user` and `--cookie-home`, run as a user would: the program's uid, gid, supplementary groups
//! and HOME; a user that does not exist stops the boot with 78 before anything runs or is
//! written; rendered files, the runtime dir and the state file belong to the user and to nobody
//! else; the cookie lands in the user's `~/.erlang.cookie` (0400, theirs) and in no output; a real
//! `erl` run as that user finds it there.
//!
//! A user with a supplementary group and a home of its own is made for each test with useradd
//! (its name holds the test's pid) and removed after it. These tests need root: CI runs as root,
//! and elsewhere they print one SKIPPED line.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use crate::support::*;

/// A test that cannot do its work here: a failure under CI=true, else one SKIPPED line.
#[track_caller]
fn skip(why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true, and this test cannot run: {why}");
    eprintln!("SKIPPED: {why}");
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A user of the test's own, `rbu<pid>`, in its group and in a second group `rbg<pid>`, with a
/// home in a temporary directory; removed when dropped.
struct TestUser {
    name: String,
    group: String,
    uid: u32,
    gid: u32,
    extra_gid: u32,
    home: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestUser {
    fn create() -> TestUser {
        let pid = std::process::id();
        let (name, group) = (format!("rbu{pid}"), format!("rbg{pid}"));
        let dir = tempdir();
        // The temporary directory is root's 0700: the home goes in a directory others may enter.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let home = dir.path().join("home");
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        assert!(ok(Command::new("groupadd").arg(&group)), "groupadd {group}");
        assert!(
            ok(Command::new("useradd").args(["-U", "-m", "-s", "/bin/sh", "-G", &group, "-d"]).arg(&home).arg(&name)),
            "useradd {name}"
        );
        let id = |flag: &str, of: &str| -> u32 {
            let out = Command::new("id").args([flag, of]).output().expect("id");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("a number")
        };
        let extra_gid =
            String::from_utf8_lossy(&Command::new("getent").args(["group", &group]).output().expect("getent").stdout)
                .split(':')
                .nth(2)
                .and_then(|g| g.trim().parse().ok())
                .expect("the group's gid");
        TestUser { uid: id("-u", &name), gid: id("-g", &name), extra_gid, name, group, home, _dir: dir }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // userdel takes the user's own group with it (useradd -U made it).
        let quiet =
            |c: &mut Command| c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
        let _ = quiet(Command::new("userdel").arg(&self.name));
        let _ = quiet(Command::new("groupdel").arg(&self.group));
    }
}

/// A boot that needs no network.
fn local() -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "10.42.96.65", "--service", "rmq", "--peers", "none"]);
    command
}

/// What `id` and HOME say inside the program.
const WHO: &str = r#"echo "$(id -u) $(id -g) $(id -G | tr ' ' '\n' | sort -n | tr '\n' ' ')$HOME""#;

#[test]
fn the_program_runs_with_the_users_ids_groups_and_home() {
    if !is_root() {
        return skip("--user needs root");
    }
    let user = TestUser::create();
    let output = run(local().env("HOME", "/root").args(["--user", &user.name, "--", "sh", "-c", WHO]));
    assert_code(&output, 0);
    let mut groups = [user.gid, user.extra_gid];
    groups.sort_unstable();
    let want = format!("{} {} {} {} {}\n", user.uid, user.gid, groups[0], groups[1], user.home.display());
    assert_eq!(stdout(&output), want, "uid gid groups HOME; {}", stderr(&output));
    assert!(stderr(&output).contains(&format!("as {} (uid {}", user.name, user.uid)), "{}", stderr(&output));

    // USER:GROUP: that group instead of the passwd entry's, the supplementary ones kept.
    let output = run(local().args(["--user", &format!("{}:{}", user.name, user.group), "--", "sh", "-c", WHO]));
    assert_code(&output, 0);
    assert!(stdout(&output).starts_with(&format!("{} {} ", user.uid, user.extra_gid)), "{}", stdout(&output));

    // A system user, by the environment twin: root's groups are gone.
    let output = run(local().env("RANCHER_BOOT_USER", "daemon").args(["--", "sh", "-c", WHO]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "1 1 1 /usr/sbin\n");
}

#[test]
fn a_numeric_id_without_an_entry_gets_its_own_group_and_home_slash() {
    if !is_root() {
        return skip("--user needs root");
    }
    let output = run(local().env("HOME", "/root").args(["--user", "4242123", "--", "sh", "-c", WHO]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "4242123 4242123 4242123 /\n", "never root's group 0");
    let output = run(local().args(["--user", "4242123:4242124", "--", "sh", "-c", WHO]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "4242123 4242124 4242124 /\n");
}

#[test]
fn a_user_that_does_not_exist_is_78_and_nothing_runs_or_is_written() {
    let dir = tempdir();
    let src = write_file(&dir.path().join("adv.src"), "[{rabbit, [{cluster_nodes, {${PEER_NODES_ERL}, disc}}]}].\n");
    let dest = dir.path().join("advanced.config");
    let marker = dir.path().join("ran");
    for spec in ["no-such-user-rb", "root:no-such-group-rb"] {
        let output = run(local()
            .args(["--user", spec, "--template"])
            .arg(format!("{}:{}", src.display(), dest.display()))
            .args(["--", "touch"])
            .arg(&marker));
        assert_code(&output, 78);
        assert!(stderr(&output).contains("no such"), "{}", stderr(&output));
        assert!(!marker.exists(), "the program ran");
        assert!(!dest.exists(), "a template was written");
    }
    let output = run(local().args(["--user", "", "--", "true"]));
    assert_code(&output, 64);
}

#[test]
fn rendered_files_the_runtime_dir_and_the_state_belong_to_the_user_alone() {
    if !is_root() {
        return skip("--user needs root");
    }
    let user = TestUser::create();
    let dir = tempdir();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let src = write_file(&dir.path().join("adv.src"), "[{rabbit, [{cluster_nodes, {${PEER_NODES_ERL}, disc}}]}].\n");
    let etc = dir.path().join("etc");
    fs::create_dir(&etc).expect("mkdir");
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).expect("chmod");
    let dest = etc.join("advanced.config");
    let runtime = dir.path().join("rt");
    let output = run(local()
        .args(["--user", &user.name, "--vm-args"])
        .arg(write_file(&dir.path().join("vm.args.src"), "-name ${NODE_NAME}\n"))
        .arg("--template")
        .arg(format!("{}:{}", src.display(), dest.display()))
        .arg("--runtime-dir")
        .arg(&runtime)
        .args(["--", "sh", "-c", r#"cat "$1" "$RELEASE_VM_ARGS""#, "sh"])
        .arg(&dest));
    assert_code(&output, 0);
    assert_eq!(
        stdout(&output),
        "[{rabbit, [{cluster_nodes, {[], disc}}]}].\n-name sh@10.42.96.65\n",
        "the user reads them"
    );
    for (path, mode) in
        [(&dest, 0o600), (&runtime.join("vm.args"), 0o600), (&runtime.join("state.json"), 0o600), (&runtime, 0o700)]
    {
        let meta = fs::metadata(path).expect("written");
        assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid), "{} is the user's", path.display());
        assert_eq!(meta.mode() & 0o777, mode, "{}: nobody else's", path.display());
    }
    // And another user indeed cannot read it (run by rancher-boot --user too).
    let output = run(local().args(["--user", "nobody", "--", "cat"]).arg(&dest));
    assert_code(&output, 1);
    assert!(stderr(&output).contains("Permission denied"), "{}", stderr(&output));
}

#[test]
fn the_cookie_goes_to_the_users_home_0400_and_into_no_output() {
    if !is_root() {
        return skip("--user needs root");
    }
    let user = TestUser::create();
    let dir = tempdir();
    let cookie = "rbit-HomeC00kieXyZ";
    let file = write_file(&dir.path().join("cookie"), format!("{cookie}\n"));
    let home_cookie = user.home.join(".erlang.cookie");
    // One there already, root's and stale: replaced, not appended to or left.
    write_file(&home_cookie, "stale");
    let report = r#"stat -c '%a %u %g' "$HOME/.erlang.cookie"; test -r "$HOME/.erlang.cookie" && echo readable"#;
    let output = run(local()
        .args(["-vv", "--user", &user.name, "--cookie-home", "--cookie-file"])
        .arg(&file)
        .args(["--", "sh", "-c", report]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("400 {} {}\nreadable\n", user.uid, user.gid));
    assert_eq!(fs::read_to_string(&home_cookie).expect("written"), cookie, "the cookie alone, no newline");
    assert!(!stderr(&output).contains(cookie), "the cookie is logged: {}", stderr(&output));
    let leftovers: Vec<_> = fs::read_dir(&user.home)
        .expect("home")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // From RELEASE_COOKIE, by the environment twins; a dry run says where and not what.
    fs::remove_file(&home_cookie).expect("rm");
    let output = run(local()
        .env("RELEASE_COOKIE", cookie)
        .env("RANCHER_BOOT_COOKIE_HOME", "1")
        .env("RANCHER_BOOT_USER", &user.name)
        .args(["-vv", "--dry-run", "--", "true"]));
    assert_code(&output, 0);
    let all = stdout(&output) + &stderr(&output);
    assert!(all.contains(&home_cookie.display().to_string()) && !all.contains(cookie), "{all}");
    assert!(!home_cookie.exists(), "a dry run writes nothing");
    let output =
        run(local().env("RELEASE_COOKIE", cookie).args(["-vv", "--user", &user.name, "--cookie-home", "--", "true"]));
    assert_code(&output, 0);
    assert!(!(stdout(&output) + &stderr(&output)).contains(cookie));
    assert_eq!(fs::read_to_string(&home_cookie).expect("written"), cookie);

    // Asked for, with no cookie to write: 78, and nothing runs.
    let marker = dir.path().join("ran");
    let output = run(local().args(["--user", &user.name, "--cookie-home", "--", "touch"]).arg(&marker));
    assert_code(&output, 78);
    assert!(stderr(&output).contains("--cookie-home"), "{}", stderr(&output));
    assert!(!marker.exists());
}

#[test]
fn erl_run_as_the_user_finds_the_cookie_in_its_home() {
    if !is_root() {
        return skip("--user needs root");
    }
    let user = TestUser::create();
    let dir = tempdir();
    let cookie = "rbit-ErlHomeC00kie";
    let file = write_file(&dir.path().join("cookie"), cookie);
    let node = format!("rbuser_{}@127.0.0.1", std::process::id());
    let eval = r#"io:format("~s ~s~n", [os:getenv("USER_ID"), erlang:get_cookie() =:= list_to_atom(os:getenv("WANT"))]), halt()."#;
    let output = run_within(
        local()
            .env("WANT", cookie)
            .env("USER_ID", user.uid.to_string())
            .args(["--user", &user.name, "--cookie-home", "--cookie-file"])
            .arg(&file)
            .args(["--", "erl", "-noshell", "-name", &node, "-eval", eval]),
        dir.path(),
        std::time::Duration::from_secs(60),
    );
    assert_code(&output, 0);
    assert_eq!(stdout(&output), format!("{} true\n", user.uid), "{}", stderr(&output));
}

#[test]
fn with_init_pid_1_drops_too_and_the_child_is_the_user() {
    if !is_root() {
        return skip("--user needs root");
    }
    let output = run(local().args([
        "--init",
        "--user",
        "daemon",
        "--",
        "sh",
        "-c",
        r#"echo "$(id -u) $(stat -c %u /proc/$PPID)""#,
    ]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "1 1\n", "the child and rancher-boot, its parent, both run as daemon");
}

#[test]
fn rabbitmq_and_ejabberd_get_their_names() {
    let output = run(local().args([
        "--node-basename",
        "rabbit",
        "--",
        "sh",
        "-c",
        "echo $RABBITMQ_NODENAME $RABBITMQ_USE_LONGNAME $ERLANG_NODE",
    ]));
    assert_code(&output, 0);
    assert_eq!(stdout(&output), "rabbit@10.42.96.65 true rabbit@10.42.96.65\n");
}
