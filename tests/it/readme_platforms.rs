//! The platform pages of `docs/` (once the README's platform sections, hence the module's name)
//! name the variables the code reads or exports: every variable their snippets set and every one
//! their prose names in backticks is a string literal of `src/`, and each page's snippets set the
//! variables its platform needs. A rename in the code without the docs (or a typo in a snippet)
//! fails here.

use std::fs;
use std::path::Path;

/// The text of every Rust file under `dir`.
fn sources(dir: &Path, out: &mut String) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&fs::read_to_string(&path).expect("read source"));
        }
    }
}

/// The text of the platform page `docs/<page>.md`.
fn page(root: &Path, page: &str) -> String {
    fs::read_to_string(root.join("docs").join(format!("{page}.md"))).unwrap_or_else(|e| panic!("docs/{page}.md: {e}"))
}

/// The fenced code blocks of a section, and the prose around them.
fn split(section: &str) -> (Vec<&str>, String) {
    let (mut code, mut prose) = (Vec::new(), String::new());
    for (i, part) in section.split("\n```").enumerate() {
        if i % 2 == 1 { code.push(part) } else { prose.push_str(part) }
    }
    (code, prose)
}

fn is_variable(word: &str) -> bool {
    word.len() > 2
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && word.contains('_')
}

/// The variables a snippet sets: YAML `- name: X`, JSON `"name": "X"`, HCL/TOML `X = ...`, sh `export X=`.
fn set_in(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines().map(str::trim) {
        let candidate = if let Some(rest) = line.strip_prefix("- name:") {
            rest.split_whitespace().next().unwrap_or("")
        } else if let Some(rest) = line.split("\"name\": \"").nth(1) {
            rest.split('"').next().unwrap_or("")
        } else if let Some(rest) = line.strip_prefix("export ") {
            rest.split('=').next().unwrap_or("")
        } else {
            line.split(" =").next().unwrap_or("").trim()
        };
        if is_variable(candidate) {
            names.push(candidate.to_string());
        }
    }
    names
}

/// Backticked variable names of the prose; `NOMAD_ALLOC_IP_<label>` counts as its prefix.
fn named_in(prose: &str) -> Vec<String> {
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|word| word.split("<").next().unwrap_or(word).trim_start_matches('$').trim_start_matches('{'))
        .filter(|word| is_variable(word.trim_end_matches('_')))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_platform_snippets_name_the_variables_the_code_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut code_text = String::new();
    sources(&root.join("src"), &mut code_text);
    // The variables each platform's snippets must set (the rest is found without them). Swarm,
    // Compose and Rancher need none; their prose is checked all the same.
    let needs: [(&str, &[&str]); 7] = [
        ("kubernetes", &["POD_IP", "POD_NAMESPACE", "RANCHER_BOOT_SERVICE", "RANCHER_BOOT_NAME_BY"]),
        ("ecs", &["RANCHER_BOOT_PEER_QUERY"]),
        ("nomad", &["RANCHER_BOOT_PEER_QUERY"]),
        ("fly", &["RELEASE_NODE", "ERL_AFLAGS", "DNS_CLUSTER_QUERY"]),
        ("swarm", &[]),
        ("compose", &[]),
        ("rancher", &[]),
    ];
    let mut unknown = Vec::new();
    for (heading, needed) in needs {
        let text = page(root, heading);
        let (code, prose) = split(&text);
        let set: Vec<String> = code.iter().flat_map(|c| set_in(c)).collect();
        for name in needed {
            assert!(set.iter().any(|s| s == name), "docs/{heading}.md: no snippet sets {name} (sets {set:?})");
        }
        for name in set.iter().chain(&named_in(&prose)) {
            // The application's own variables (Phoenix's) are not rancher-boot's to read.
            if name.starts_with("PHX_") {
                continue;
            }
            let literal = if name.ends_with('_') { format!("\"{name}") } else { format!("\"{name}\"") };
            if !code_text.contains(&literal) {
                unknown.push(format!("{heading}: {name}"));
            }
        }
    }
    assert!(unknown.is_empty(), "docs/ names variables that no code in src/ reads or exports: {unknown:?}");
}

#[test]
fn the_extraction_sees_each_syntax() {
    let yaml = "env:\n  - name: POD_IP\n    valueFrom: x\n  - name: hello\n  - name: RANCHER_BOOT_SERVICE   # why\n";
    assert_eq!(set_in(yaml), ["POD_IP", "RANCHER_BOOT_SERVICE"]);
    assert_eq!(set_in(r#"{"name": "RANCHER_BOOT_PEER_QUERY", "value": "x"}"#), ["RANCHER_BOOT_PEER_QUERY"]);
    assert_eq!(set_in("  RANCHER_BOOT_PEER_QUERY  = \"x\"\n  count = 3\n"), ["RANCHER_BOOT_PEER_QUERY"]);
    assert_eq!(set_in("export RELEASE_NODE=\"x\"\n"), ["RELEASE_NODE"]);
    assert_eq!(
        named_in("the `NOMAD_ALLOC_IP_<label>` and `FLY_APP_NAME`, not `--ip`"),
        ["NOMAD_ALLOC_IP_", "FLY_APP_NAME"]
    );
}
