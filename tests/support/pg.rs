//! Throwaway PostgreSQL databases for tests: each is created empty and dropped when its guard
//! goes, so a test run leaves no `tocsin_t_*` database behind.

/// The test server's URL, when PostgreSQL tests are to run.
pub fn pg_server_url() -> Option<String> {
    std::env::var("TOCSIN_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty())
}

/// A database created for one test; dropped (connections and all) with the guard.
pub struct TestDatabase {
    pub url: String,
    name: String,
    server: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let server = pg_server_url().expect("TOCSIN_TEST_DATABASE_URL");
        let (client, conn) =
            tokio_postgres::connect(&server, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
        tokio::spawn(conn);
        let name = format!("tocsin_t_{}", uuid::Uuid::new_v4().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
        Self { url: with_database(&server, &name), name, server }
    }
}

/// `server` (a PostgreSQL URL) with its database name replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let Some((scheme, rest)) = server.split_once("://") else { return server.to_string() };
    let (authority, query) = match rest.split_once('/') {
        Some((authority, after)) => {
            (authority, after.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default())
        }
        None => (rest, String::new()),
    };
    format!("{scheme}://{authority}/{name}{query}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop cannot wait on the test's runtime: a thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await.ok()?;
                tokio::spawn(conn);
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
