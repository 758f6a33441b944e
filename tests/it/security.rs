//! The secure-distribution presets with real VMs: `--dist tls` (certificates from `openssl`: a
//! test CA, a node certificate with an IP SAN, and a foreign CA), `--dist-port` (no EPMD, in
//! namespaces of the test's own), and the cookie lint, with the cookie text in no output.
//!
//! Needs (Debian): erlang-nox, openssl, iproute2; runs as root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::lan::Lan;
use crate::support::vm::{self, COOKIE};
use crate::support::{BIN, assert_code, clean_env, rancher_boot, run, run_within, stderr, stdout, tempdir, wait_for};

/// `openssl` with `args`, in `dir`.
#[track_caller]
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("sh").current_dir(dir).arg("-c").arg(format!("openssl {args}")).output().expect("openssl");
    assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA in `dir/NAME-ca.*`, and `dir/NAME/` holding `tls.crt` (for 127.0.0.1 by IP SAN),
/// `tls.key` and that `ca.crt`: a Kubernetes TLS secret's layout.
fn pki(dir: &Path, name: &str) -> PathBuf {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(dir, &format!("req -x509 {ec} -keyout {name}-ca.key -out {name}-ca.crt -days 2 -subj /CN={name}-ca"));
    let out = dir.join(name);
    fs::create_dir_all(&out).expect("tls dir");
    openssl(dir, &format!("req {ec} -keyout {name}/tls.key -out {name}.csr -subj /CN=node"));
    fs::write(dir.join(format!("{name}.ext")), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA {name}-ca.crt -CAkey {name}-ca.key -CAcreateserial -out {name}/tls.crt \
             -days 2 -extfile {name}.ext"
        ),
    );
    fs::copy(dir.join(format!("{name}-ca.crt")), out.join("ca.crt")).expect("ca.crt");
    out
}

fn owner_only(path: &Path) -> PathBuf {
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o400)).expect("chmod");
    path.to_path_buf()
}

/// rancher-boot as the local node `n` on 127.0.0.1 with no peers: add options, then `--`.
fn local_node() -> Command {
    let mut command = rancher_boot();
    command.args(["--source", "local", "--ip", "127.0.0.1", "--peers", "none", "--node-basename", "n"]);
    command
}

/// A node booted through rancher-boot on 127.0.0.1 that runs `eval`, then waits.
struct Node {
    name: String,
    child: Child,
    out: PathBuf,
}

impl Node {
    fn boot(dir: &Path, basename: &str, dist: &[&str], cookie: &Path, eval: &str) -> Node {
        let out = dir.join(format!("{basename}.out"));
        let mut command = rancher_boot();
        command
            .args(["--source", "local", "--ip", "127.0.0.1", "--peers", "none", "--node-basename", basename])
            .arg("--runtime-dir")
            .arg(dir.join(format!("rt-{basename}")))
            .arg("--cookie-file")
            .arg(cookie)
            .args(dist)
            .args(["--", "sh", "-c", r#"exec erl -noshell -name "$NODE_NAME" -setcookie "$RELEASE_COOKIE" -eval "$0""#])
            .arg(format!("{eval}, io:format(\"ready~n\"), receive after infinity -> ok end."))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("out"))
            .stderr(fs::File::create(dir.join(format!("{basename}.err"))).expect("err"));
        let child = command.spawn().expect("boot");
        let node = Node { name: format!("{basename}@127.0.0.1"), child, out };
        wait_for(&format!("{basename} to start"), Duration::from_secs(60), || node.output().contains("ready"));
        node
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tls_nodes_mesh_and_nobody_without_a_certificate_of_the_ca_gets_in() {
    let dir = tempdir();
    let tls = pki(dir.path(), "good");
    let foreign = pki(dir.path(), "foreign");
    let cookie = owner_only(&vm::cookie_file(dir.path(), COOKIE));
    let pid = std::process::id();
    let name = |n: &str| format!("tls_{n}_{pid}");
    let tls_flags = ["--dist", "tls", "--tls-dir", tls.to_str().expect("utf-8")];

    let a = Node::boot(dir.path(), &name("a"), &tls_flags, &cookie, "ok");
    let b = Node::boot(dir.path(), &name("b"), &tls_flags, &cookie, "ok");
    // The third meshes the three and says over which protocol it reached a.
    let check = format!(
        "A = '{}', B = '{}', \
         io:format(\"ping ~p ~p ~p~n\", [net_adm:ping(A), net_adm:ping(B), rpc:call(A, net_adm, ping, [B])]), \
         {{ok, Info}} = net_kernel:node_info(A), Addr = proplists:get_value(address, Info), \
         io:format(\"protocol ~p~n\", [element(4, Addr)]), \
         io:format(\"a-sees ~p~n\", [lists:sort(rpc:call(A, erlang, nodes, []))])",
        a.name, b.name
    );
    let c = Node::boot(dir.path(), &name("c"), &tls_flags, &cookie, &check);
    let seen = c.output();
    assert!(seen.contains("ping pong pong pong"), "{seen}");
    assert!(seen.contains("protocol tls"), "{seen}");
    let mut others = [b.name.clone(), c.name.clone()];
    others.sort();
    assert!(seen.contains(&format!("a-sees ['{}','{}']", others[0], others[1])), "{seen}");
    let optfile =
        fs::read_to_string(dir.path().join(format!("rt-{}", name("a"))).join("ssl_dist.conf")).expect("optfile");
    assert!(optfile.contains("{fail_if_no_peer_cert, true}") && !optfile.contains(COOKIE), "{optfile}");

    // The right cookie and a certificate of another CA: no way in.
    let ping_a = format!("io:format(\"ping ~p~n\", [net_adm:ping('{}')])", a.name);
    let d = Node::boot(
        dir.path(),
        &name("d"),
        &["--dist", "tls", "--tls-dir", foreign.to_str().expect("utf-8")],
        &cookie,
        &ping_a,
    );
    assert!(d.output().contains("ping pang"), "{}", d.output());
    // The right cookie and plain TCP: no way in either.
    let e = Node::boot(dir.path(), &name("e"), &[], &cookie, &ping_a);
    assert!(e.output().contains("ping pang"), "{}", e.output());
    let nodes = run_erl_rpc(dir.path(), &tls_flags, &cookie, &a.name, "erlang:nodes()");
    assert!(!nodes.contains(&name("d")) && !nodes.contains(&name("e")), "{nodes}");

    // The probe: EPMD and TCP, saying what it could not check; rpc needs TLS, which it lacks.
    let probe = |level: &str| {
        let mut command = rancher_boot();
        command.env("RANCHER_BOOT_RUNTIME_DIR", dir.path().join(format!("rt-{}", name("a"))));
        run(command.args(["probe", "-v", "--level", level]))
    };
    let output = probe("connect");
    assert_code(&output, 0);
    assert!(stderr(&output).contains("tls: epmd and tcp; the handshake was not attempted"), "{}", stderr(&output));
    let output = probe("rpc");
    assert_code(&output, 78);
    assert!(stderr(&output).contains("no TLS client"), "{}", stderr(&output));
    drop((b, c, d, e));
}

/// A passthrough beside a TLS node (`remote`, `rpc` of a release) gets the same flags: a second
/// VM that reaches the node over TLS.
fn run_erl_rpc(dir: &Path, dist: &[&str], cookie: &Path, node: &str, call: &str) -> String {
    let script = dir.join("rpc.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec erl -noshell -hidden -name rpc_$$@127.0.0.1 -setcookie \"$RELEASE_COOKIE\" \
             -eval 'io:format(\"~p~n\", [rpc:call('\\''{node}'\\'', erlang, apply, [fun() -> {call} end, []])]), halt().'\n"
        ),
    )
    .expect("script");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let mut command = rancher_boot();
    command
        .args(["--source", "local", "--ip", "127.0.0.1", "--peers", "none", "--node-basename", "rpc"])
        .arg("--cookie-file")
        .arg(cookie)
        .args(dist)
        .arg("--app")
        .arg(&script)
        .arg("rpc");
    let output = run_within(&mut command, dir, Duration::from_secs(60));
    assert_code(&output, 0);
    stdout(&output)
}

#[test]
fn a_release_rpc_beside_a_tls_node_reaches_it() {
    let dir = tempdir();
    let tls = pki(dir.path(), "good");
    let cookie = owner_only(&vm::cookie_file(dir.path(), COOKIE));
    let tls_flags = ["--dist", "tls", "--tls-dir", tls.to_str().expect("utf-8")];
    let a = Node::boot(dir.path(), &format!("tls_r_{}", std::process::id()), &tls_flags, &cookie, "ok");
    // erlang:node() there, over TLS; a lambda runs there only if the connection is up.
    let answer = run_erl_rpc(dir.path(), &tls_flags, &cookie, &a.name, "node()");
    assert_eq!(answer.trim(), format!("'{}'", a.name));
    // Without --dist tls the same command is a stranger.
    let answer = run_erl_rpc(dir.path(), &[], &cookie, &a.name, "node()");
    assert!(answer.contains("badrpc"), "{answer}");
}

#[test]
fn tls_files_that_are_missing_or_not_pem_are_a_78_before_anything_runs() {
    let dir = tempdir();
    let tls = dir.path().join("tls");
    fs::create_dir_all(&tls).expect("dir");
    let boot = |tls_dir: &Path| {
        let mut command = local_node();
        command.args(["--dist", "tls", "--tls-dir"]).arg(tls_dir).args(["--", "sh", "-c", "echo the program ran"]);
        run(&mut command)
    };
    let output = boot(&tls);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("tls.crt") && !stdout(&output).contains("ran"), "{}", stderr(&output));
    for name in ["tls.crt", "tls.key", "ca.crt"] {
        fs::write(tls.join(name), "not a certificate\n").expect("write");
    }
    let output = boot(&tls);
    assert_code(&output, 78);
    assert!(stderr(&output).contains("is not PEM"), "{}", stderr(&output));
    let output = boot(&dir.path().join("nowhere"));
    assert_code(&output, 78);
    let output = run(rancher_boot().args(["--source", "local", "--dist", "tls", "--node-basename", "n", "--", "true"]));
    assert_code(&output, 64);
    assert!(stderr(&output).contains("--tls-dir"), "{}", stderr(&output));
}

/// Three nodes with `--dist-port` in namespaces of their own: they mesh, and nothing listens on
/// 4369 anywhere, nor does an epmd run.
#[test]
fn dist_port_nodes_mesh_with_no_epmd() {
    let dir = tempdir();
    let lan = Lan::new(3);
    let cookie = owner_only(&vm::cookie_file(dir.path(), COOKIE));
    let boot = |i: usize, eval: &str| -> (Child, PathBuf) {
        let out = dir.path().join(format!("dp{i}.out"));
        let mut command = lan.command(i, BIN);
        clean_env(&mut command);
        command
            .args(["--source", "local", "--ip", &lan.ip(i).to_string(), "--peers", "none", "--node-basename", "dp"])
            .args(["--dist-port", "9200", "--cookie-file"])
            .arg(&cookie)
            .args(["--", "sh", "-c", r#"exec erl -noshell -name "$NODE_NAME" -setcookie "$RELEASE_COOKIE" -eval "$0""#])
            .arg(format!("{eval}, io:format(\"ready~n\"), receive after infinity -> ok end."))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("out"))
            .stderr(fs::File::create(dir.path().join(format!("dp{i}.err"))).expect("err"));
        let child = command.spawn().expect("boot");
        wait_for("a --dist-port node", Duration::from_secs(60), || {
            fs::read_to_string(&out).unwrap_or_default().contains("ready")
        });
        (child, out)
    };
    let (mut n0, _) = boot(0, "ok");
    let (mut n1, _) = boot(1, "ok");
    let check = format!(
        "io:format(\"ping ~p ~p ~p~n\", [net_adm:ping('dp@{0}'), net_adm:ping('dp@{1}'), rpc:call('dp@{0}', net_adm, ping, ['dp@{1}'])])",
        lan.ip(0),
        lan.ip(1)
    );
    let (mut n2, out) = boot(2, &check);
    let seen = fs::read_to_string(&out).unwrap_or_default();
    assert!(seen.contains("ping pong pong pong"), "{seen}");
    for i in 0..3 {
        let listening = Command::new("ip").args(["netns", "exec", &lan.ns(i), "ss", "-ltnH"]).output().expect("ss");
        let listening = String::from_utf8_lossy(&listening.stdout);
        assert!(!listening.contains(":4369"), "host {i} listens on 4369: {listening}");
        assert!(listening.contains(":9200"), "host {i} does not listen on 9200: {listening}");
        let pids = Command::new("ip").args(["netns", "pids", &lan.ns(i)]).output().expect("pids");
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            assert_ne!(comm.trim(), "epmd", "host {i} runs an epmd");
        }
    }
    // The probe connects to IP:9200 directly.
    let mut probe = lan.command(0, BIN);
    clean_env(&mut probe);
    probe
        .args([
            "--dist-port",
            "9200",
            "probe",
            "--level",
            "rpc",
            "--node",
            &format!("dp@{}", lan.ip(1)),
            "--cookie-file",
        ])
        .arg(&cookie);
    assert_code(&run(&mut probe), 0);
    for child in [&mut n0, &mut n1, &mut n2] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn the_cookie_lint_refuses_published_cookies_and_warns_about_weak_ones() {
    let dir = tempdir();
    let boot = |cookie_file: &Path| {
        let mut command = local_node();
        command.arg("--cookie-file").arg(cookie_file).args(["--", "sh", "-c", "echo the program ran"]);
        run(&mut command)
    };
    for published in ["something-secret-here-please-change-me", "monster", "change-me-with---cookie-file"] {
        let file = owner_only(&dir.path().join(format!("{published}.cookie")).tap_write(published));
        let output = boot(&file);
        assert_code(&output, 78);
        assert!(
            stderr(&output).contains("published default") && !stdout(&output).contains("ran"),
            "{}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains(published) || stderr(&output).contains(&file.display().to_string()));
    }
    // RELEASE_COOKIE inherited: the same lint.
    let mut command = rancher_boot();
    command.env("RELEASE_COOKIE", "monster").args(["--source", "local", "--ip", "127.0.0.1", "--peers", "none"]);
    let output = run(command.args(["--node-basename", "n", "--", "true"]));
    assert_code(&output, 78);
    assert!(stderr(&output).contains("RELEASE_COOKIE") && !stderr(&output).contains("monster"), "{}", stderr(&output));

    let short = owner_only(&dir.path().join("short").tap_write("k9Xq2"));
    let output = boot(&short);
    assert_code(&output, 0);
    assert!(stderr(&output).contains("warn: ") && stderr(&output).contains("5 bytes long"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("k9Xq2"));

    let open = dir.path().join("open").tap_write("a-long-enough-random-cookie-8f2c");
    fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let output = boot(&open);
    assert_code(&output, 0);
    assert!(stderr(&output).contains("readable by group or others (mode 0644)"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("8f2c") && !stdout(&output).contains("8f2c"));
}

trait TapWrite {
    fn tap_write(self, text: &str) -> PathBuf;
}

impl TapWrite for PathBuf {
    fn tap_write(self, text: &str) -> PathBuf {
        fs::write(&self, text).expect("write");
        self
    }
}
