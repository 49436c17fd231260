//! The module graph stays one-way: each module of `src/` may name only the modules below it.
//!
//! The picture (docs/DESIGN.md, "Modules"): `class` is the floor; the base types import only
//! the floor; `keyring` and `dm_table` sit on base types; the leaves `luks`, `dm`, `format` and
//! `sparse` never import each other; `error` aggregates the leaves; `pipeline` is on top; the
//! command-line tool uses only the crate's root API. This test reads every `crate::<module>`
//! path in every source file (tests included) and fails on an edge the picture forbids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may import whom. A module not listed here fails the test: new modules get a place.
fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    const BASE: &[&str] = &["class"];
    let mut m: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    m.insert("class", vec![]);
    for base in [
        "cancel",
        "key",
        "params",
        "superblock",
        "extent",
        "name",
        "blockdev",
        "step",
        "loopdev",
        "state",
        "probes",
    ] {
        m.insert(base, BASE.to_vec());
    }
    // The dm-integrity lock lives in the owner-checked state directory.
    m.insert("kernel", vec!["class", "state"]);
    m.insert("keyring", vec!["class", "key"]);
    m.insert("dm_table", vec!["class", "key", "params", "superblock"]);
    m.insert(
        "luks",
        vec!["class", "key", "params", "superblock", "kernel", "blockdev"],
    );
    m.insert(
        "dm",
        vec![
            "class",
            "key",
            "params",
            "superblock",
            "kernel",
            "name",
            "blockdev",
            "dm_table",
            "keyring",
        ],
    );
    m.insert("format", vec!["class", "extent"]);
    m.insert("sparse", vec!["class", "extent", "blockdev"]);
    m.insert("resize", vec!["class", "extent"]);
    m.insert("signature", vec!["class", "params"]);
    m.insert(
        "error",
        vec![
            "cancel",
            "class",
            "dm",
            "format",
            "key",
            "luks",
            "name",
            "resize",
            "signature",
            "sparse",
            "step",
        ],
    );
    // The tests' one skip rule (tests/support/skip.rs, included under cfg(test)) is a floor
    // module every test may use.
    for deps in m.values_mut() {
        deps.push("test_skip");
    }
    m.insert("test_skip", vec![]);
    let everything: Vec<&'static str> = m.keys().copied().collect();
    m.insert("pipeline", everything);
    m
}

/// The module a source file belongs to: `src/dm.rs` and `src/dm/real.rs` are both `dm`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Every module named as `crate::<module>` in `text`, outside line comments.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` lists several modules.
            if name.is_empty() && after.starts_with('{') {
                let inner = after[1..].split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let n: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !n.is_empty() {
                        found.insert(n);
                    }
                }
            } else if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The forbidden edges of the library's source tree, as `file: module -> module` lines.
fn violations(src: &Path) -> Vec<String> {
    let allowed = allowed();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let module = match module_of(src, &file) {
            Some(m) if m == "lib" || m == "bin" => continue,
            Some(m) => m,
            None => continue,
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let Some(may) = allowed.get(module.as_str()) else {
            bad.push(format!(
                "{}: module {module} has no place in the graph",
                file.display()
            ));
            continue;
        };
        for dep in crate_paths(&text) {
            if dep != module && !may.contains(&dep.as_str()) {
                bad.push(format!("{}: {module} -> {dep}", file.display()));
            }
        }
    }
    bad
}

/// No module of the library imports one the picture puts beside or above it.
#[test]
fn module_graph_is_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "forbidden imports:\n{}", bad.join("\n"));
}

/// The command-line tool uses the crate's root API only, never a module path.
#[test]
fn cli_uses_only_the_root_api() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut files = Vec::new();
    rust_files(&bin, &mut files);
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(i) = code.find("scratchcrypt::") {
                let after = &code[i + "scratchcrypt::".len()..];
                let lower = after.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                let is_fn_call = after
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                    == Some('(');
                assert!(
                    !lower || is_fn_call,
                    "{}: reaches into a module: {line}",
                    file.display()
                );
            }
        }
    }
}

/// The checker itself catches a forbidden edge (a leaf importing a leaf) and braces lists.
#[test]
fn checker_catches_a_leaf_importing_a_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("format")).unwrap();
    std::fs::write(src.join("format.rs"), "use crate::extent::ByteRange;\n").unwrap();
    std::fs::write(
        src.join("format/plan.rs"),
        "// use crate::dm; is only a comment\nuse crate::{class, sparse};\n",
    )
    .unwrap();
    std::fs::write(src.join("newthing.rs"), "").unwrap();
    let bad = violations(src);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].ends_with("format -> sparse"), "{bad:?}");
    assert!(bad[1].contains("newthing has no place"), "{bad:?}");
}
