//! The processes a run starts (sinks, servers) and the API client that drives them.

use super::*;

pub(crate) const ADMIN: &str = "tsn_bench_admin_token_000000000000000000";
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // A wrapped server (a profiler) is asked to stop, so that the profiler writes its output.
        if std::env::var_os("TOCSIN_BENCH_SERVER_WRAPPER").is_some() {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

type Plain = Client<HttpConnector, Full<Bytes>>;

pub(crate) struct Api {
    pub(crate) client: Plain,
    pub(crate) base: String,
    token: String,
}

impl Api {
    pub(crate) fn new(port: u16) -> Self {
        Self::with_token(port, ADMIN)
    }

    /// An API client that authenticates with `token` (another tenant's).
    pub(crate) fn with_token(port: u16, token: &str) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
        }
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?.map(Bytes::from);
        let (status, bytes) = self.call_raw(method, path, body).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// [`Api::call`] with a body already written as JSON text, answering the bytes unparsed.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
        req = req.header("authorization", format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let resp = self.client.request(req.body(Full::new(body.unwrap_or_default()))?).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }
}

pub(crate) async fn wait_ready(api: &Api, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = api.call(Method::GET, path, None).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{} did not become ready", api.base)
}

/// The `tocsin` binary under test: `TOCSIN_BENCH_SERVER`, or the `tocsin` beside this tool (both
/// are built into the same target directory).
pub(crate) fn exe() -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("TOCSIN_BENCH_SERVER") {
        return Ok(path.into());
    }
    let beside = std::env::current_exe()?.with_file_name("tocsin");
    anyhow::ensure!(beside.is_file(), "no tocsin binary at {}; set TOCSIN_BENCH_SERVER", beside.display());
    Ok(beside)
}

/// The command that starts a server: this executable, or, when `TOCSIN_BENCH_SERVER_WRAPPER` is
/// set, that command line with this executable after it. A profiler that counts instructions
/// (`valgrind --tool=callgrind`) gives figures that do not drift with the machine's speed.
pub(crate) fn server_command() -> anyhow::Result<Command> {
    let wrapper = std::env::var("TOCSIN_BENCH_SERVER_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    Ok(match words.next() {
        None => Command::new(exe()?),
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(exe()?);
            cmd
        }
    })
}

/// A sink: `tocsin listen --quiet`, optionally slow.
pub(crate) async fn start_sink(delay_ms: u64) -> anyhow::Result<(Proc, u16, Api)> {
    let port = free_port();
    let child = Command::new(exe()?)
        .args([
            "listen",
            "--quiet",
            "--port",
            &port.to_string(),
            "--secret",
            SECRET,
            "--delay-ms",
            &delay_ms.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let api = Api::new(port);
    wait_ready(&api, "/_tocsin/stats").await?;
    Ok((Proc(child), port, api))
}

pub(crate) struct Server {
    pub(crate) procs: Vec<Proc>,
    pub(crate) api: Api,
    /// The API port of every server, the first one's first.
    pub(crate) ports: Vec<u16>,
    /// Where the servers keep their data (for `tocsin token create` beside them).
    pub(crate) data_dir: std::path::PathBuf,
    pub(crate) database_url: String,
    pub(crate) _dir: tempfile::TempDir,
    /// The scenario's own PostgreSQL database, if any.
    pub(crate) database: Option<BenchDatabase>,
}

/// A database this run created on the user's PostgreSQL server: dropped when its scenario ends.
pub(crate) struct BenchDatabase {
    pub(crate) admin_url: String,
    pub(crate) name: String,
    pub(crate) dropped: bool,
}

impl BenchDatabase {
    pub(crate) async fn drop_now(mut self) {
        let dropped = async {
            let (client, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await
        };
        match dropped.await {
            Ok(()) => self.dropped = true,
            Err(e) => eprintln!("could not drop the bench database {}: {e}", self.name),
        }
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if !self.dropped {
            eprintln!(
                "the bench database {} is left on the server; drop it with DROP DATABASE {}",
                self.name, self.name
            );
        }
    }
}

/// Ends a scenario: stops its servers, then drops its PostgreSQL database.
/// An admin token of `tenant`, made by `tocsin token create` beside the running servers.
pub(crate) fn tenant_token(server: &Server, tenant: &str) -> anyhow::Result<String> {
    let out = Command::new(exe()?)
        .args(["token", "create", "--tenant", tenant, "--role", "admin", "--name", "bench"])
        .env("TOCSIN_DATA_DIR", &server.data_dir)
        .env("TOCSIN_DATABASE_URL", &server.database_url)
        .env("TOCSIN_MASTER_KEY", "b".repeat(64))
        .env("TOCSIN_LOG", "warn")
        .output()?;
    anyhow::ensure!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Transactions committed so far in the scenario's PostgreSQL database.
pub(crate) async fn postgres_commits(database: &BenchDatabase) -> anyhow::Result<i64> {
    let (client, conn) = tokio_postgres::connect(&database.admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let row =
        client.query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", &[&database.name]).await?;
    Ok(row.get::<_, i64>(0))
}

/// Transactions committed in the scenario's database once its other sessions have ended (up to
/// 10 s): each backend reports its last commits as it exits.
pub(crate) async fn commits_once_closed(database: &BenchDatabase) -> anyhow::Result<i64> {
    let (client, conn) = tokio_postgres::connect(&database.admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if Instant::now() >= deadline {
            eprintln!(
                "the servers' sessions on {} did not end within 10 s: commits may be undercounted",
                database.name
            );
            break;
        }
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
                &[&database.name],
            )
            .await?
            .get(0);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    postgres_commits(database).await
}

pub(crate) async fn finish(procs: Vec<Proc>, database: Option<BenchDatabase>) {
    drop(procs);
    if let Some(db) = database {
        db.drop_now().await;
    }
}

/// Fresh storage: a temp SQLite file, or a new database on the given PostgreSQL server.
pub(crate) async fn fresh_database(
    arg: &Option<String>,
    dir: &std::path::Path,
) -> anyhow::Result<(String, Option<BenchDatabase>)> {
    match arg.as_deref() {
        None | Some("sqlite") => Ok((format!("sqlite://{}/bench.db", dir.display()), None)),
        Some(url) if url.starts_with("postgres") => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let name = format!("tocsin_bench_{}", uuid::Uuid::new_v4().simple());
            client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
            let base = url.split('?').next().unwrap_or(url);
            let db_url = format!("{}/{name}", base.rsplit_once('/').map_or(base, |(b, _)| b));
            Ok((db_url, Some(BenchDatabase { admin_url: url.to_string(), name, dropped: false })))
        }
        Some(other) => anyhow::bail!("--database: expected sqlite or postgres://…, got {other}"),
    }
}

pub(crate) async fn start_servers(args: &BenchArgs, extra_env: &[(&str, String)]) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let (db, database) = fresh_database(&args.database, dir.path()).await?;
    let mut procs = Vec::new();
    let mut ports = Vec::new();
    let mut first_port = 0;
    let per_server = args.concurrency_per_server();
    for i in 0..args.servers.max(1) {
        let port = free_port();
        if i == 0 {
            first_port = port;
        }
        ports.push(port);
        let mut cmd = server_command()?;
        cmd.arg("serve")
            .env("TOCSIN_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOCSIN_DATA_DIR", dir.path())
            .env("TOCSIN_DATABASE_URL", &db)
            .env("TOCSIN_ADMIN_TOKEN", ADMIN)
            .env("TOCSIN_MASTER_KEY", "b".repeat(64))
            .env("TOCSIN_ALLOW_DESTINATIONS", "127.0.0.0/8")
            .env("TOCSIN_WEBHOOK_CONCURRENCY", per_server.to_string())
            .env("TOCSIN_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        procs.push(Proc(cmd.spawn()?));
        wait_ready(&Api::new(port), "/readyz").await?;
    }
    let data_dir = dir.path().to_path_buf();
    Ok(Server { procs, api: Api::new(first_port), ports, data_dir, database_url: db, _dir: dir, database })
}
