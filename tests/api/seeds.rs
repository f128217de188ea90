//! The seed products' own verification snippets, cut unchanged out of their documents in
//! `../shared/seeds/`, and run by the interpreters they are written for on what a receiver got.
//! With `TOCSIN_REQUIRE_SNIPPETS=1` (CI) a missing interpreter fails the test; otherwise the
//! run is skipped with a note.

use std::path::PathBuf;
use std::process::Command;

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds")
}

/// The seed document that contains `marker`.
fn document(marker: &str) -> String {
    let dir = seeds_dir();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if text.contains(marker) {
            return text;
        }
    }
    panic!("no seed document mentions {marker}");
}

/// The text of the seed document mentioning `marker` between the lines `after` and `before`.
pub fn snippet(marker: &str, after: &str, before: &str) -> String {
    let doc = document(marker);
    let start = doc.find(after).unwrap_or_else(|| panic!("{after:?} not in the seed")) + after.len();
    let end = start + doc[start..].find(before).unwrap_or_else(|| panic!("{before:?} not in the seed"));
    doc[start..end].trim().to_string()
}

/// Runs `program` with `interpreter` (`node -e`, `python3 -c`); false when it exits non-zero.
pub fn run(interpreter: &str, flag: &str, program: &str) -> Option<bool> {
    match Command::new(interpreter).arg(flag).arg(program).output() {
        Ok(out) => {
            if !out.status.success() {
                eprintln!("{interpreter} said: {}", String::from_utf8_lossy(&out.stderr));
            }
            Some(out.status.success())
        }
        Err(e) => {
            assert!(
                std::env::var_os("TOCSIN_REQUIRE_SNIPPETS").is_none(),
                "{interpreter} is required (TOCSIN_REQUIRE_SNIPPETS is set): {e}"
            );
            eprintln!("skipped: {interpreter} is not installed ({e})");
            None
        }
    }
}

/// Writes `body` to a file and returns its path (the snippets read the raw bytes from it).
fn body_file(dir: &tempfile::TempDir, body: &[u8]) -> String {
    let path = dir.path().join("body");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// PhishNet's Node.js `verifySignature(secret, rawBody, signatureHeader)`.
pub fn phishnet_node_verifies(secret: &str, body: &[u8], header: &str) -> Option<bool> {
    let code = snippet("X-Phishnet-Signature", "Verification example (Node.js):", "Use crypto.timingSafeEqual");
    let dir = tempfile::tempdir().unwrap();
    let file = body_file(&dir, body);
    let program = format!(
        "{code}\nprocess.exit(verifySignature({secret:?}, require('fs').readFileSync({file:?}), {header:?}) ? 0 : 1);\n"
    );
    run("node", "-e", &program)
}

/// The saved seed page lost the indentation of its code blocks, which Python needs: the body of
/// each `def` gets its four spaces back. Nothing else changes.
fn python_reindented(code: &str) -> String {
    let mut out = String::new();
    let mut in_def = false;
    for line in code.lines() {
        if in_def && !line.is_empty() {
            out.push_str("    ");
        }
        in_def |= line.starts_with("def ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// NetRecon's Python `verify_webhook(payload, signature, secret)`.
pub fn netrecon_python_verifies(secret: &str, body: &[u8], header: &str) -> Option<bool> {
    let code = python_reindented(&snippet(
        "X-NetRecon-Signature",
        "Python Verification Example",
        "Node.js Verification Example",
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = body_file(&dir, body);
    let program = format!(
        "{code}\nimport sys\nsys.exit(0 if verify_webhook(open({file:?}, 'rb').read(), {header:?}, {secret:?}) else 1)\n"
    );
    run("python3", "-c", &program)
}

/// NetRecon's Node.js `verifyWebhook(payload, signature, secret)`.
pub fn netrecon_node_verifies(secret: &str, body: &[u8], header: &str) -> Option<bool> {
    let code = snippet("X-NetRecon-Signature", "Node.js Verification Example", "Retry Policy");
    let dir = tempfile::tempdir().unwrap();
    let file = body_file(&dir, body);
    let program = format!(
        "{code}\nprocess.exit(verifyWebhook(require('fs').readFileSync({file:?}), {header:?}, {secret:?}) ? 0 : 1);\n"
    );
    run("node", "-e", &program)
}

/// The check the Gophish, Selki and pentest documents describe in words (they print no code):
/// `sha256=` and the lowercase hex of HMAC-SHA256 over the whole body, keyed with the secret, as
/// Python's standard library computes it.
pub fn hmac_sha256_hex_verifies(secret: &str, body: &[u8], header: &str) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let file = body_file(&dir, body);
    let program = format!(
        "import hmac, hashlib, sys\nbody = open({file:?}, 'rb').read()\n\
         expected = 'sha256=' + hmac.new({secret:?}.encode(), body, hashlib.sha256).hexdigest()\n\
         sys.exit(0 if hmac.compare_digest(expected, {header:?}) else 1)\n"
    );
    run("python3", "-c", &program)
}

/// Asserts that a check passed (or could not run for want of its interpreter, outside CI).
#[track_caller]
pub fn assert_verified(result: Option<bool>, what: &str) {
    assert_ne!(result, Some(false), "{what} rejects the signature");
}

#[test]
fn the_snippets_are_found_in_the_seeds_and_reject_a_wrong_signature() {
    assert!(snippet("X-Phishnet-Signature", "Verification example (Node.js):", "Use crypto.timingSafeEqual")
        .contains("timingSafeEqual"));
    let wrong = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
    for result in [
        phishnet_node_verifies("s3cret-s3cret-s3cret", b"{}", wrong),
        netrecon_python_verifies("s3cret-s3cret-s3cret", b"{}", wrong),
        netrecon_node_verifies("s3cret-s3cret-s3cret", b"{}", wrong),
        hmac_sha256_hex_verifies("s3cret-s3cret-s3cret", b"{}", wrong),
    ] {
        assert_ne!(result, Some(true), "a snippet accepted a wrong signature");
    }
}
