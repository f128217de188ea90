//! Marks the PostgreSQL tests ignored when `TOCSIN_TEST_DATABASE_URL` is not set, so that a run
//! without a server reports how many it skipped instead of counting them as passed.

fn main() {
    println!("cargo:rerun-if-env-changed=TOCSIN_TEST_DATABASE_URL");
    println!("cargo:rustc-check-cfg=cfg(pg_tests)");
    if std::env::var("TOCSIN_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=pg_tests");
    }
}
