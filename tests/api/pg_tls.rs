//! PostgreSQL over TLS: the local server serves a certificate for `localhost` from a test CA
//! (`.ci/run` sets it up and names the CA in `TOCSIN_TEST_PG_TLS_CA`). With
//! `sslmode=verify-full` and that CA in `TOCSIN_DATABASE_CA_FILE`, Tocsin serves over an
//! encrypted connection; with another CA, it is refused with a clear error.

use reqwest::StatusCode;
use tocsin::store::DatabaseUrl;

use crate::helpers::{make_certs, run_tocsin, test_settings, Backend, TestApp, TestDatabase, ADMIN_TOKEN};
use crate::pg_only;

/// The test CA's PEM file, or None (skipped, except in CI).
fn test_ca() -> Option<String> {
    match std::env::var("TOCSIN_TEST_PG_TLS_CA") {
        Ok(ca) => Some(ca),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI sets TOCSIN_TEST_PG_TLS_CA (.ci/run)");
            eprintln!("skipped: TOCSIN_TEST_PG_TLS_CA is not set (.ci/run sets PostgreSQL up with TLS)");
            None
        }
    }
}

/// The test database's URL through `localhost` (the certificate's name), with `query`.
fn over_tls(db: &TestDatabase, query: &str) -> String {
    let url = db.url.replace("@127.0.0.1:", "@localhost:");
    format!("{url}{}{query}", if url.contains('?') { '&' } else { '?' })
}

pg_only! {
    async fn verify_full_connects_with_the_ca_and_is_refused_without() {
        let Some(ca) = test_ca() else { return };
        let db = TestDatabase::create().await;
        let url = over_tls(&db, "sslmode=verify-full");

        // Another CA: refused, saying why and what to do.
        let other = tempfile::tempdir().unwrap();
        let other_ca = make_certs(other.path());
        let (code, _, err) = run_tocsin(&["migrate", "--database", &format!("{url}&sslrootcert={}", other_ca.display())]);
        assert_ne!(code, 0);
        assert!(err.contains("certificate is not trusted") && err.contains("TOCSIN_DATABASE_CA_FILE"), "{err}");
        // The right CA, through the URL as libpq spells it.
        let (code, out, err) = run_tocsin(&["migrate", "--database", &format!("{url}&sslrootcert={ca}")]);
        assert_eq!(code, 0, "{out}{err}");

        // `serve` with TOCSIN_DATABASE_CA_FILE: it works, and its connections are encrypted.
        let dir = tempfile::tempdir().unwrap();
        let (mut settings, _) = test_settings(Backend::Sqlite, dir.path()).await;
        settings.database = DatabaseUrl::parse(&format!("{url}&sslrootcert={ca}")).unwrap();
        let app = TestApp::start(settings, dir).await;
        let (s, created) = app.post("/api/v1/webhooks", ADMIN_TOKEN, crate::helpers::webhook_body("over tls")).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let name = db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
        let row = client
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE s.ssl) AS tls, COUNT(*) AS all FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
                &[&name],
            )
            .await
            .unwrap();
        let (tls, all): (i64, i64) = (row.get("tls"), row.get("all"));
        assert!(tls > 0 && tls == all, "every connection of the app is encrypted: {tls} of {all}");
        drop(app);
    }
}
