//! OCSF validation by an independent library: `support/ocsf_check.py` with pydantic-ocsf's models
//! of the published schemas. The interpreter is `TOCSIN_OCSF_PYTHON`, else the virtual
//! environment `.ci/run` makes (`target/ocsf-venv`). With `TOCSIN_REQUIRE_SNIPPETS=1` (CI) a
//! missing one fails the test; otherwise the check is skipped with a note.

use std::path::PathBuf;
use std::process::Command;

fn interpreter() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TOCSIN_OCSF_PYTHON") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ocsf-venv/bin/python");
    venv.exists().then_some(venv)
}

/// Whether every event validates (`None`: the library is not installed here).
pub fn all_valid(events: &[serde_json::Value]) -> Option<bool> {
    let Some(python) = interpreter() else {
        assert!(
            std::env::var_os("TOCSIN_REQUIRE_SNIPPETS").is_none(),
            "pydantic-ocsf is required (TOCSIN_REQUIRE_SNIPPETS is set): run .ci/run's set-up or set TOCSIN_OCSF_PYTHON"
        );
        eprintln!("skipped: no Python with pydantic-ocsf (.ci/run makes target/ocsf-venv)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ocsf_check.py");
    let out = Command::new(&python).arg(script).arg(&file).output().expect("the OCSF checker runs");
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some(out.status.success())
}
