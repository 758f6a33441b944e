//! The code cites its design pages as `docs/<page>.md`: each cited page is in the repository, and
//! nothing cites the design notes that are not (`SPEC.md`, `PLATFORMS.md`, `FAULTS.md`, "SPEC 13").

use std::fs;
use std::path::Path;

fn files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            // bench/run.sh's output (a copy of an older tree among it) is no part of the repository.
            if !path.ends_with("bench/out") {
                files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs" || e == "sh") {
            out.push((path.display().to_string(), fs::read_to_string(&path).expect("read")));
        }
    }
}

#[test]
fn every_cited_design_page_is_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for dir in ["src", "tests", "fuzz/fuzz_targets", "bench", "docker"] {
        files(&root.join(dir), &mut all);
    }
    let outside = ["SPEC.md", "PLATFORMS.md", "FAULTS.md", "SPEC section", "SPEC 1", "FAULTS 1", "FAULTS 2"];
    let mut cited = 0;
    for (path, text) in &all {
        for word in outside {
            // This file names them to forbid them.
            assert!(path.ends_with("tests/it/docs.rs") || !text.contains(word), "{path} cites {word}");
        }
        for (at, _) in text.match_indices("docs/") {
            let page: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'))
                .collect();
            if let Some(page) = page.strip_suffix('.').or(Some(&page)).filter(|p| p.ends_with(".md")) {
                assert!(root.join(page).is_file(), "{path} cites {page}, which is not in the repository");
                cited += 1;
            }
        }
    }
    assert!(cited > 10, "only {cited} citations found");
}

/// Issue 22, item 8: no example (the README, the docs' pages, docker/) publishes EPMD (4369) on a
/// routing mesh; the README and the Swarm page say never to.
#[test]
fn no_example_publishes_epmd() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = vec![("README.md".to_string(), fs::read_to_string(root.join("README.md")).expect("README"))];
    for entry in
        fs::read_dir(root.join("docker")).expect("docker/").chain(fs::read_dir(root.join("docs")).expect("docs/"))
    {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yml" || e == "sh" || e == "md") {
            texts.push((path.display().to_string(), fs::read_to_string(&path).expect("read")));
        }
    }
    for (path, text) in &texts {
        for line in text.lines() {
            let publishes =
                line.contains("ports:") || line.contains("--publish") || line.trim_start().starts_with("- \"");
            assert!(!(publishes && (line.contains(":4369") || line.contains("target=4369"))), "{path}: {line}");
        }
    }
    assert!(texts[0].1.contains("Never publish 4369"), "the README says never to publish EPMD");
    let swarm = fs::read_to_string(root.join("docs/swarm.md")).expect("docs/swarm.md");
    assert!(swarm.contains("Never publish 4369"), "the Swarm page says never to publish EPMD");
}

/// `--app`'s help names what each kind of release calls its remote shell.
#[test]
fn app_help_names_remote_for_mix_and_remote_console_for_relx() {
    let output = crate::support::run(crate::support::rancher_boot().arg("--help"));
    let help = crate::support::stdout(&output);
    let app = help.lines().skip_while(|l| !l.contains("--app <PATH>")).take(3).collect::<Vec<_>>().join(" ");
    assert!(app.contains("`rancher-boot remote` for a mix release") && app.contains("remote_console"), "{app}");
}

/// The README's first command, the main job, boots with the example template as it is in the
/// repository (before: a `${RELEASE_COOKIE}` in one of its comments was a 78 without a cookie).
#[test]
fn the_readme_main_job_renders_the_example_vm_args_and_execs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README");
    let line = readme.lines().find(|l| l.starts_with("cargo run --release -- ")).expect("the main job's command");
    assert!(line.contains("--vm-args examples/vm.args.src"), "{line}");
    let output = crate::support::run(
        crate::support::rancher_boot()
            .current_dir(root)
            .args(["--source", "local", "--peers", "none", "--node-basename", "hello"])
            .args(["--vm-args", "examples/vm.args.src", "--", "sh", "-c"])
            .arg(r#"echo "booted as $NODE_NAME, pid $$"; cat "$RELEASE_VM_ARGS""#),
    );
    crate::support::assert_code(&output, 0);
    let stdout = crate::support::stdout(&output);
    assert!(stdout.starts_with("booted as hello@") && stdout.contains("\n-name hello@"), "{stdout}");
}
