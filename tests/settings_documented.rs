//! The README's configuration table and the declared settings say the same: every setting is
//! documented, nothing documented is missing, and flags and defaults agree.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

use tocsin::config::declared::{Fallback, ALL};

/// The rows of the README's configuration table: (variables, flags, default cell).
fn readme_rows() -> Vec<(Vec<String>, Vec<String>, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    readme
        .lines()
        .filter(|l| l.starts_with("| `TOCSIN_"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let first = cells[0].trim_start_matches("| ");
            let ticked = |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(String::from).collect() };
            let names = ticked(first).into_iter().filter(|t| t.starts_with("TOCSIN_")).collect();
            let flags = ticked(first).into_iter().filter(|t| t.starts_with("--")).collect();
            (names, flags, cells.get(1).map(|c| c.to_string()).unwrap_or_default())
        })
        .collect()
}

#[test]
fn the_readme_documents_exactly_the_declared_settings() {
    let rows = readme_rows();
    let documented: Vec<&String> = rows.iter().flat_map(|(names, _, _)| names).collect();
    for setting in ALL {
        assert!(documented.iter().any(|d| *d == setting.env), "{} is not in the README's table", setting.env);
    }
    for name in &documented {
        assert!(ALL.iter().any(|s| s.env == name.as_str()), "the README documents {name}, which is not a setting");
    }
}

#[test]
fn the_readme_shows_each_flag_and_default() {
    for (names, flags, default) in readme_rows() {
        for name in &names {
            let setting = ALL.iter().find(|s| s.env == name).expect("declared");
            let flag: Vec<String> = setting.flag.iter().map(|f| f.to_string()).collect();
            if names.len() == 1 {
                assert_eq!(flags, flag, "flags of {name}");
            }
            match setting.default {
                Fallback::Value(v) => {
                    assert!(default.contains(&format!("`{v}`")), "{name}: default `{v}` not in {default:?}")
                }
                Fallback::Unset => assert!(default.contains('—'), "{name} has no default: {default:?}"),
                Fallback::Derived => assert!(!default.contains('—'), "{name}: say how its default is worked out"),
            }
        }
    }
}
