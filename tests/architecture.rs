//! The shape of the source tree, checked: layers that depend one way only, no giant files, and
//! one folder per destination format.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (doc links may name any module).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source file");
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The top-level module a file belongs to (`src/delivery/attempt.rs` → `delivery`).
fn top_module(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(SRC).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules a piece of code names through `crate::`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b};`
            let inner = group.split('}').next().unwrap_or_default();
            for part in inner.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The layer order: the modules as `lib.rs` declares them, lowest first.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(format!("{SRC}/lib.rs")).expect("lib.rs");
    lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|l| l.trim_end_matches(';').trim().to_string()).collect()
}

#[test]
fn each_module_depends_only_on_the_layers_below_it() {
    let order = layers();
    assert!(order.len() > 5, "lib.rs declares the layers: {order:?}");
    let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut violations = Vec::new();
    for file in rust_files(Path::new(SRC)) {
        let Some(module) = top_module(&file) else { continue };
        let own = *rank.get(module.as_str()).unwrap_or_else(|| panic!("{module} is not declared in lib.rs"));
        for dep in referenced_modules(&code_of(&file)) {
            let Some(&theirs) = rank.get(dep.as_str()) else { continue };
            if theirs > own {
                violations.push(format!("{} uses crate::{dep} (a higher layer)", file.display()));
            }
        }
    }
    assert!(violations.is_empty(), "layers must depend downwards only (order in lib.rs):\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_plain_paths() {
    let found = referenced_modules("use crate::{store::Store, domain};\nlet x = crate::app::run();");
    assert_eq!(found, BTreeSet::from(["store".to_string(), "domain".to_string(), "app".to_string()]));
}

#[test]
fn no_source_file_is_a_giant() {
    let giants: Vec<String> = rust_files(Path::new(SRC))
        .into_iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).ok()?.lines().count();
            (lines > 600).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(giants.is_empty(), "split these files (600 lines at most):\n{}", giants.join("\n"));
}

#[test]
fn a_format_is_named_only_in_its_folder_and_where_it_is_registered() {
    let dir = Path::new(SRC).join("destinations");
    let formats: Vec<String> = std::fs::read_dir(&dir)
        .expect("src/destinations")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.join("mod.rs").is_file())
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect();
    assert!(formats.len() >= 6, "one folder per format: {formats:?}");
    let registry = dir.join("mod.rs");
    let mut strays = Vec::new();
    for file in rust_files(Path::new(SRC)) {
        // `TOCSIN_LOG_FORMAT=json` names a log format, not the `json` destination format.
        let mut code: String =
            code_of(&file).lines().filter(|l| !l.contains("LogFormat::")).collect::<Vec<_>>().join("\n");
        if file == registry {
            // The registration lines are the one place that lists every format.
            let start = code.find("registry! {").expect("the formats are registered in destinations/mod.rs");
            let end = start + code[start..].find('}').expect("the registry ends");
            code.replace_range(start..=end, "");
        }
        for name in &formats {
            if file.starts_with(dir.join(name)) {
                continue;
            }
            let quoted = format!("\"{name}\"");
            let path = format!("{name}::");
            let as_path = code.match_indices(&path).any(|(i, _)| {
                // `serde_json::` is not the `json` format's module, nor `transport::syslog::` the
                // `syslog` format's; `destinations::syslog::` and `super::syslog::` are.
                let before = &code[..i];
                before.ends_with("destinations::")
                    || before.ends_with("super::")
                    || !before.ends_with(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))
            });
            if code.contains(&quoted) || as_path {
                strays.push(format!("{} names the format {name}", file.display()));
            }
        }
    }
    assert!(strays.is_empty(), "a format's rules belong in its folder:\n{}", strays.join("\n"));
}
