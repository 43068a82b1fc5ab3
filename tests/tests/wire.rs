//! The Postgres-wire endpoint, driven by real clients over a real socket.

use std::time::Duration;

use heavenbase::Workspace;
use heavenbase_pgwire::{AuthConfig, AuthMethod, ServeOptions, User, serve_on};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::common::TestHome;
use crate::sql::load;

/// Start a server for `workspaces` on a free loopback port; returns the port.
async fn start_with(workspaces: Vec<Workspace>, opts: ServeOptions) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { serve_on(listener, workspaces, &opts, std::future::pending()).await.expect("server runs") });
    port
}

pub(crate) async fn start(ws: Workspace) -> u16 {
    start_with(vec![ws], ServeOptions::default()).await
}

pub(crate) async fn connect(port: u16, db: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=postgres dbname={db}"), NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn simple_rows(msgs: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_reads_and_writes_over_the_wire() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite+inmem").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite-inmem").await;

    // Simple protocol.
    let rows = simple_rows(client.simple_query("SELECT name, price FROM product ORDER BY name").await.unwrap());
    assert_eq!(rows[0], vec![Some("alpha".into()), Some("10".into())]);
    assert_eq!(rows.len(), 4);

    // Extended protocol with a typed parameter, binary results.
    let got = client.query("SELECT name, qty FROM product WHERE price > $1 ORDER BY name", &[&15.0f64]).await.unwrap();
    let names: Vec<(String, Option<i64>)> = got.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(names, vec![("beta".into(), Some(2)), ("delta".into(), None)]);

    // Writes go through the workspace: ids derive from names, cards are written.
    let n = client.execute("INSERT INTO product (name, title, price) VALUES ('omega', 'Last', 1.5)", &[]).await.unwrap();
    assert_eq!(n, 1);
    let omega = heavenbase::catalog::derive_object_id("product", "omega");
    assert_eq!(ws.get("product", &omega).await.unwrap().unwrap()["title"], serde_json::json!("Last"));
    let n = client.execute("UPDATE product SET qty = 7 WHERE name = 'omega'", &[]).await.unwrap();
    assert_eq!(n, 1);
    // Prepared DML: WHERE placeholders take their column's type; SET values are
    // described as text and coerced by the write path.
    let n =
        client.execute("UPDATE product SET qty = $1 WHERE name = $2 AND price < $3", &[&"8", &"omega", &2.0f64]).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(ws.get("product", &omega).await.unwrap().unwrap()["qty"], serde_json::json!(8));
    let n = client.execute("DELETE FROM product WHERE name = $1", &[&"nobody"]).await.unwrap();
    assert_eq!(n, 0);
    let msgs = client
        .simple_query("DELETE FROM product WHERE object_id IN (SELECT product_id FROM review WHERE stars = 5)")
        .await
        .unwrap();
    let tag = msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(1));
    assert_eq!(ws.count("product").await.unwrap(), 4);
    assert!(ws.audit().await.unwrap().ok());

    // Errors carry a SQLSTATE, and the session goes on.
    let err = client.simple_query("DELETE FROM product WHERE colour = 'red'").await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert!(db.message().contains("colour"), "{db:?}");
    let err = client.simple_query("UPDATE product SET colour = 'red'").await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!((db.code().code(), db.message().contains("Did you mean")), ("42703", false), "{db:?}");
    let err = client.simple_query("INSERT INTO product (name) VALUES ('beta')").await.unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert!(db.message().contains("already exists"), "{db:?}");
    let rows = simple_rows(client.simple_query("SELECT count(*) FROM product").await.unwrap());
    assert_eq!(rows, vec![vec![Some("4".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_and_queries_entities() {
    if std::process::Command::new("psql").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "psql is required under CI");
        eprintln!("skipped: psql is not installed");
        return;
    }
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let psql = |cmd: &str| {
        let cmd = cmd.to_string();
        async move {
            let out = tokio::process::Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "sqlite",
                    "-X",
                    "-A",
                    "-t",
                    "-c",
                    &cmd,
                ])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "psql {cmd}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let tables = psql("\\dt").await;
    assert!(tables.contains("product") && tables.contains("review") && tables.contains("sys_catalog"), "{tables}");
    let out = psql("SELECT name FROM product WHERE price IS NOT NULL ORDER BY name").await;
    assert_eq!(out.trim(), "alpha\nbeta\ndelta");
    let out = psql("INSERT INTO product (name, price) VALUES ('psql row', 3)").await;
    assert_eq!(out.trim(), "INSERT 0 1");
    let out = psql("SELECT price FROM product WHERE name = 'psql row'").await;
    assert_eq!(out.trim(), "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_is_refused_and_the_server_keeps_serving() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let err = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=nope"), NoTls)
        .await
        .err()
        .expect("an unknown database is refused");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "3D000", "{db:?}");
    assert!(db.message().contains("\"nope\" does not exist"), "{db:?}");
    let client = connect(port, "sqlite").await;
    let rows = simple_rows(client.simple_query("SELECT count(*) FROM product").await.unwrap());
    assert_eq!(rows, vec![vec![Some("4".into())]]);
}

fn db_code(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_else(|| format!("no server error: {e}"))
}

fn has_psql() -> bool {
    if std::process::Command::new("psql").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "psql is required under CI");
    eprintln!("skipped: psql is not installed");
    false
}

/// psql with a connection string, `-X -A -t`, optional stdin; returns (success, stdout, stderr).
async fn psql_run(conninfo: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_listener_serves_every_workspace_by_database_name() {
    let h = TestHome::new();
    let a = load(&h, "sqlite").await;
    let b = load(&h, "sqlite+inmem").await;
    b.upsert("product", serde_json::json!({"name": "only in b"})).await.unwrap();
    let port = start_with(vec![a, b], ServeOptions::default()).await;
    let count = |db: &'static str| async move {
        let client = connect(port, db).await;
        client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get::<_, i64>(0)
    };
    assert_eq!((count("sqlite").await, count("sqlite-inmem").await), (4, 5));
    let err =
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=other"), NoTls).await.err().unwrap();
    assert_eq!(db_code(&err), "3D000");
    assert!(err.as_db_error().unwrap().message().contains("sqlite, sqlite-inmem"), "{err}");
}

fn users(method: AuthMethod) -> AuthConfig {
    AuthConfig {
        users: vec![
            User { name: "app".into(), password: "s3cret pass".into(), read_only: false },
            User { name: "bi".into(), password: "look-only".into(), read_only: true },
        ],
        method,
        trust_loopback: None,
    }
}

async fn login(port: u16, user: &str, password: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user={user} password='{password}' dbname=sqlite"), NoTls)
            .await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_and_a_read_only_role() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start_with(vec![ws.clone()], ServeOptions { auth: users(AuthMethod::ScramSha256), ..Default::default() }).await;

    // With users configured, loopback is not trusted: a wrong or missing password is refused.
    let err = login(port, "app", "wrong").await.err().expect("a wrong password is refused");
    assert_eq!(db_code(&err), "28P01");
    let err = login(port, "nobody", "s3cret pass").await.err().expect("an unknown user is refused");
    assert_eq!(db_code(&err), "28P01");
    assert!(tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=app dbname=sqlite"), NoTls).await.is_err());

    let app = login(port, "app", "s3cret pass").await.expect("SCRAM login");
    assert_eq!(app.execute("INSERT INTO product (name, price) VALUES ('by app', 1.0)", &[]).await.unwrap(), 1);

    let bi = login(port, "bi", "look-only").await.expect("SCRAM login");
    let n: i64 = bi.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 5);
    for write in [
        "INSERT INTO product (name) VALUES ('by bi')",
        "UPDATE product SET qty = 9 WHERE name = 'alpha'",
        "DELETE FROM product WHERE name = 'alpha'",
        "CREATE TABLE sneaky (name VARCHAR)",
    ] {
        let err = bi.simple_query(write).await.err().unwrap_or_else(|| panic!("{write} is refused"));
        assert_eq!(db_code(&err), "42501", "{write}");
        let err = bi.execute(write, &[]).await.err().unwrap_or_else(|| panic!("{write} is refused (extended)"));
        assert_eq!(db_code(&err), "42501", "{write}");
    }
    // Nothing was written, and the session goes on.
    let n: i64 = bi.query_one("SELECT count(*) FROM product WHERE qty = 9 OR name = 'by bi'", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    assert_eq!(ws.count("product").await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_and_cleartext_when_configured() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    for method in [AuthMethod::Md5, AuthMethod::Cleartext] {
        let port = start_with(vec![ws.clone()], ServeOptions { auth: users(method), ..Default::default() }).await;
        let err = login(port, "app", "nope").await.err().expect("a wrong password is refused");
        assert_eq!(db_code(&err), "28P01", "{method:?}");
        let app = login(port, "app", "s3cret pass").await.unwrap_or_else(|e| panic!("{method:?}: {e}"));
        let n: i64 = app.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
        assert_eq!(n, 4);
    }
}

/// A self-signed certificate for localhost, made with the openssl command line.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sslmode_require() {
    if !has_psql() {
        return;
    }
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let (cert, key) = self_signed(h.dir.path());
    let tls = ServeOptions { tls_cert: Some(cert), tls_key: Some(key), ..Default::default() };
    let port = start_with(vec![ws.clone()], tls).await;
    let plain = start(ws.clone()).await;

    let conninfo = |port: u16| format!("host=127.0.0.1 port={port} user=postgres dbname=sqlite sslmode=require");
    let (ok, out, err) = psql_run(&conninfo(port), &["-c", "SELECT count(*) FROM product"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "4");
    // psql reports the TLS session it negotiated.
    let (ok, out, err) = psql_run(&conninfo(port), &["-c", "\\conninfo"], None).await;
    assert!(ok && out.contains("SSL connection"), "{out}{err}");
    // Without a certificate the server has no TLS, and sslmode=require fails.
    let (ok, _, err) = psql_run(&conninfo(plain), &["-c", "SELECT 1"], None).await;
    assert!(!ok && err.to_lowercase().contains("ssl"), "{err}");
    // A missing key file stops the server instead of serving plaintext.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broken = ServeOptions {
        tls_cert: Some("/nonexistent.crt".into()),
        tls_key: Some("/nonexistent.key".into()),
        ..Default::default()
    };
    let err = serve_on(listener, vec![ws], &broken, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent.crt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_loads_and_exports() {
    if !has_psql() {
        return;
    }
    let h = TestHome::new();
    let ws = load(&h, "sqlite+inmem").await;
    let port = start(ws.clone()).await;
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=sqlite-inmem");

    // \copy FROM STDIN, text format: tabs, \N for NULL, escapes, an array literal.
    let data = "copied one\t1.5\t{a,b}\tline\\tbreak\ncopied two\t\\N\t{}\t\\N\n";
    let (ok, out, err) = psql_run(&conninfo, &["-c", "\\copy product (name, price, tags, title) FROM pstdin"], Some(data)).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 2");
    let one = ws.get("product", &heavenbase::catalog::derive_object_id("product", "copied one")).await.unwrap().unwrap();
    assert_eq!(
        (one["price"].clone(), one["tags"].clone(), one["title"].clone()),
        (serde_json::json!(1.5), serde_json::json!(["a", "b"]), serde_json::json!("line\tbreak"))
    );
    let two = ws.get("product", &heavenbase::catalog::derive_object_id("product", "copied two")).await.unwrap().unwrap();
    assert_eq!(two["price"], serde_json::Value::Null);

    // CSV with a header, quoted delimiters and quotes.
    let csv = "name,title,qty\n\"csv, one\",\"say \"\"hi\"\"\",7\ncsv two,,8\n";
    let (ok, out, err) =
        psql_run(&conninfo, &["-c", "\\copy product (name, title, qty) FROM pstdin WITH (FORMAT csv, HEADER true)"], Some(csv))
            .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 2");
    let row = ws.get("product", &heavenbase::catalog::derive_object_id("product", "csv, one")).await.unwrap().unwrap();
    assert_eq!((row["title"].clone(), row["qty"].clone()), (serde_json::json!("say \"hi\""), serde_json::json!(7)));
    assert_eq!(ws.count("product").await.unwrap(), 8);
    assert!(ws.audit().await.unwrap().ok());

    // Bad input names the entity and line, and loads nothing.
    let (ok, _, err) = psql_run(&conninfo, &["-c", "\\copy product (name, qty) FROM pstdin"], Some("bad\tnot a number\n")).await;
    assert!(!ok && err.contains("product") && err.contains("qty"), "{err}");
    let (ok, _, err) = psql_run(&conninfo, &["-c", "\\copy product (name, qty) FROM pstdin"], Some("one column only\n")).await;
    assert!(!ok && err.contains("line 1"), "{err}");
    assert_eq!(ws.count("product").await.unwrap(), 8);

    // COPY (query) TO STDOUT, CSV and text.
    let (ok, out, err) = psql_run(
        &conninfo,
        &["-c", "COPY (SELECT name, qty, active FROM product WHERE name IN ('alpha', 'csv, one') ORDER BY name) TO STDOUT WITH (FORMAT csv, HEADER true)"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "name,qty,active\nalpha,1,t\n\"csv, one\",7,\n");
    let (ok, out, _) =
        psql_run(&conninfo, &["-c", "COPY (SELECT name, title FROM product WHERE name = 'copied one') TO STDOUT"], None).await;
    assert!(ok);
    assert_eq!(out, "copied one\tline\\tbreak\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lookups_over_the_wire_match_the_general_path() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite+inmem").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite-inmem").await;
    let alpha = heavenbase::catalog::derive_object_id("product", "alpha");

    // The fast path (object_id = $1, name = $1) and a general plan give the same rows.
    let fast = client.prepare("SELECT * FROM product WHERE object_id = $1").await.unwrap();
    let general = client.prepare("SELECT * FROM product WHERE object_id = $1 AND 1 = 1").await.unwrap();
    assert_eq!(fast.columns().len(), general.columns().len());
    for _ in 0..3 {
        let a = client.query(&fast, &[&alpha]).await.unwrap();
        let b = client.query(&general, &[&alpha]).await.unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
        let typed = |r: &tokio_postgres::Row| {
            (
                r.get::<_, String>("name"),
                r.get::<_, Option<String>>("title"),
                r.get::<_, Option<f64>>("price"),
                r.get::<_, Option<i64>>("qty"),
                r.get::<_, Option<bool>>("active"),
                r.get::<_, Option<std::time::SystemTime>>("created"),
            )
        };
        assert_eq!(typed(&a[0]), typed(&b[0]));
        let price: Option<f64> = a[0].get("price");
        let qty: Option<i64> = a[0].get("qty");
        assert_eq!((price, qty), (Some(10.0), Some(1)));
    }
    let by_name = client.query("SELECT object_id, qty FROM product WHERE name = $1", &[&"beta"]).await.unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].get::<_, Option<i64>>(1), Some(2));
    assert!(client.query(&fast, &[&"no such id"]).await.unwrap().is_empty());
    // A name many rows share: past the rows an indexed equality reads in place
    // (64) the read streams instead, and every row comes back either way;
    // from several connections at once, some reads find the backend's
    // connection busy and take a pooled one.
    let shared: Vec<serde_json::Map<String, serde_json::Value>> = (0..103)
        .map(|i| {
            let name = if i < 100 { "many" } else { "few" };
            serde_json::json!({"object_id": format!("shared-{i}"), "name": name, "qty": i}).as_object().cloned().unwrap()
        })
        .collect();
    ws.upsert_many("product", shared).await.unwrap();
    let mut readers = Vec::new();
    for _ in 0..6 {
        let client = connect(port, "sqlite-inmem").await;
        readers.push(tokio::spawn(async move {
            for _ in 0..20 {
                for (name, expected) in [("many", 100), ("few", 3), ("beta", 1), ("nobody", 0)] {
                    let rows = client.query("SELECT object_id, qty FROM product WHERE name = $1", &[&name]).await.unwrap();
                    assert_eq!(rows.len(), expected, "{name}");
                    let general =
                        client.query("SELECT object_id FROM product WHERE name = $1 AND 1 = 1", &[&name]).await.unwrap();
                    assert_eq!(general.len(), expected, "{name}");
                }
            }
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
    let total: i64 = client.query_one("SELECT sum(qty) FROM product WHERE name = 'many'", &[]).await.unwrap().get(0);
    assert_eq!(total, (0..100).sum::<i64>());
    // A literal key, simple and extended.
    let rows = simple_rows(client.simple_query(&format!("SELECT name FROM product WHERE object_id = '{alpha}'")).await.unwrap());
    assert_eq!(rows, vec![vec![Some("alpha".into())]]);

    // A changed entity invalidates cached statements: the new column is there.
    let mut def = ws.entity("product").unwrap();
    def = def.field(heavenbase::FieldDef::new("colour", heavenbase::LogicalType::short_text()));
    ws.register(def, true).await.unwrap();
    ws.set("product", serde_json::json!({"object_id": alpha, "colour": "green"})).await.unwrap();
    let rows = client.query("SELECT * FROM product WHERE object_id = $1", &[&alpha]).await.unwrap();
    assert_eq!(rows[0].get::<_, Option<String>>("colour"), Some("green".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_closes_sessions() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve_on(listener, vec![ws], &ServeOptions::default(), async {
            let _ = stopped.await;
        })
        .await
    });
    let client = connect(port, "sqlite").await;
    let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
    assert!(client.simple_query("SELECT 1").await.is_err(), "the session is closed");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the port is closed");
}

/// Run a client program; under CI a missing runtime or library is a failure.
pub(crate) async fn run_client(program: &str, args: &[String], probe: &[&str]) -> Option<String> {
    let available = std::process::Command::new(program).args(probe).output().is_ok_and(|o| o.status.success());
    if !available {
        assert!(std::env::var("CI").is_err(), "{program} {probe:?} must work under CI (.ci/run installs it)");
        eprintln!("skipped: {program} {probe:?} failed");
        return None;
    }
    let out = tokio::process::Command::new(program).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{program} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    Some(stdout)
}

pub(crate) fn clients_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_sqlalchemy_and_pandas() {
    let h = TestHome::new();
    let ws = crate::replay::described(&h).await;
    let port = start(ws.clone()).await;
    let alpha = heavenbase::catalog::derive_object_id("product", "alpha");
    let script = clients_dir().join("python_client.py").display().to_string();
    let args = [script, port.to_string(), "sqlite".into(), alpha];
    if let Some(out) = run_client("python3", &args, &["-c", "import psycopg, sqlalchemy, pandas"]).await {
        assert_eq!(out.trim(), "ok");
        assert_eq!(ws.count("product").await.unwrap(), 5);
    }
}

/// SQLAlchemy's ORM: create_all() of models with serial keys, a foreign key,
/// a relationship and indexes, then a Session's add/commit/query/update/delete
/// (tests/clients/sqlalchemy_orm.py); the rows it leaves are the workspace's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_orm_models_and_sessions() {
    let h = TestHome::new();
    let ws = h.open("orm", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let script = clients_dir().join("sqlalchemy_orm.py").display().to_string();
    if let Some(out) =
        run_client("python3", &[script, port.to_string(), "orm".into()], &["-c", "import sqlalchemy, psycopg"]).await
    {
        assert_eq!(out.trim(), "ok");
        let book = ws.entity("book").unwrap();
        assert_eq!(book.foreign_keys.len(), 1, "{:?}", book.foreign_keys);
        assert_eq!(book.foreign_keys[0].references, "author");
        assert!(book.get("author_id").unwrap().index, "ix_book_author_id");
        let rows = crate::common::cells(
            &ws.sql("SELECT a.name, b.title FROM book b JOIN author a ON a.id = b.author_id").await.unwrap(),
        );
        assert_eq!(rows, crate::common::rows(&[&["Bob", "Kept"]]));
        // The Session's rolled-back row and rolled-back savepoint left nothing.
        let authors = crate::common::cells(&ws.sql("SELECT name FROM author ORDER BY name").await.unwrap());
        assert_eq!(authors, crate::common::rows(&[&["Bob"], &["Kept"]]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_metadata_and_prepared_statements() {
    let h = TestHome::new();
    let ws = crate::replay::described(&h).await;
    let port = start(ws.clone()).await;
    let jar = "/usr/share/java/postgresql.jar";
    if !std::path::Path::new(jar).exists() {
        assert!(std::env::var("CI").is_err(), "{jar} is required under CI (.ci/run installs libpostgresql-jdbc-java)");
        eprintln!("skipped: {jar} is not installed");
        return;
    }
    let source = clients_dir().join("JdbcClient.java").display().to_string();
    let args = ["-cp".into(), jar.into(), source, port.to_string(), "sqlite".into()];
    if let Some(out) = run_client("java", &args, &["-version"]).await {
        assert_eq!(out.trim(), "ok");
        assert!(ws.get("product", &heavenbase::catalog::derive_object_id("product", "from jdbc")).await.unwrap().is_some());
        assert!(ws.get("product", &heavenbase::catalog::derive_object_id("product", "jdbc committed")).await.unwrap().is_some());
        assert!(ws.get("product", &heavenbase::catalog::derive_object_id("product", "jdbc block")).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_errors_carry_postgres_sqlstates() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let client = connect(port, "sqlite").await;
    for (sql, code) in [
        ("SELECT nope FROM product", "42703"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELEC 1", "42601"),
        ("SELECT 1/0", "22012"),
        ("SELECT CAST('abc' AS INT)", "22P02"),
    ] {
        let err = client.simple_query(sql).await.err().unwrap_or_else(|| panic!("{sql} fails"));
        assert_eq!(db_code(&err), code, "{sql}: {err:?}");
        let err = client.query(sql, &[]).await.err().unwrap_or_else(|| panic!("{sql} fails (extended)"));
        assert_eq!(db_code(&err), code, "{sql} (extended): {err:?}");
    }
    let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
}

/// Large results stream batch by batch from the SQLite file (more rows than one
/// batch), in both formats, every value intact; a client that stops reading
/// holds up no other session's reads or writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_stream_and_a_slow_reader_blocks_no_one() {
    use futures::{StreamExt, pin_mut};
    let h = TestHome::new();
    let ws = h.open("stream", heavenbase::Construction::preset("embedded")).await;
    ws.register(
        heavenbase::EntityDef::new("event")
            .field(heavenbase::FieldDef::new("n", heavenbase::LogicalType::Integer))
            .field(heavenbase::FieldDef::new("x", heavenbase::LogicalType::Float))
            .field(heavenbase::FieldDef::new("ok", heavenbase::LogicalType::Boolean)),
        false,
    )
    .await
    .unwrap();
    let rows = 20_000usize;
    let batch: Vec<_> = (0..rows)
        .map(|i| {
            let x = if i % 7 == 0 { serde_json::Value::Null } else { serde_json::json!(i as f64 / 4.0) };
            serde_json::json!({"name": format!("e{i:05}"), "n": i, "x": x, "ok": i % 2 == 0}).as_object().unwrap().clone()
        })
        .collect();
    ws.upsert_many("event", batch).await.unwrap();
    let port = start(ws.clone()).await;
    let client = connect(port, "stream").await;

    // Extended protocol, binary results.
    let all = client.query("SELECT name, n, x, ok FROM event ORDER BY n", &[]).await.unwrap();
    assert_eq!(all.len(), rows);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.get::<_, &str>(0), format!("e{i:05}"));
        assert_eq!(r.get::<_, i64>(1), i as i64);
        assert_eq!(r.get::<_, Option<f64>>(2), if i % 7 == 0 { None } else { Some(i as f64 / 4.0) });
        assert_eq!(r.get::<_, bool>(3), i % 2 == 0);
    }
    // Simple protocol, text results, as Postgres prints them.
    let text =
        simple_rows(client.simple_query("SELECT n, x, ok FROM event WHERE n IN (0, 1, 2, 40000) ORDER BY n").await.unwrap());
    assert_eq!(
        text,
        vec![
            vec![Some("0".into()), None, Some("t".into())],
            vec![Some("1".into()), Some("0.25".into()), Some("f".into())],
            vec![Some("2".into()), Some("0.5".into()), Some("t".into())],
        ]
    );
    let counted = client.query_one("SELECT count(*) FROM event WHERE ok", &[]).await.unwrap();
    assert_eq!(counted.get::<_, i64>(0), (rows / 2) as i64);
    let limited = client.query("SELECT n FROM event LIMIT 3", &[]).await.unwrap();
    assert_eq!(limited.len(), 3);
    // A portal read a few rows at a time (Execute with a row limit, as cursors
    // and JDBC fetch sizes do) resumes where it stopped.
    {
        let mut client = connect(port, "stream").await;
        let tx = client.transaction().await.unwrap();
        let portal = tx.bind("SELECT n FROM event ORDER BY n", &[]).await.unwrap();
        for start in [0i64, 5, 10] {
            let got: Vec<i64> = tx.query_portal(&portal, 5).await.unwrap().iter().map(|r| r.get(0)).collect();
            assert_eq!(got, (start..start + 5).collect::<Vec<_>>());
        }
        let rest = tx.query_portal(&portal, 0).await.unwrap();
        assert_eq!(rest.len(), rows - 15);
        tx.commit().await.unwrap();
    }

    // A client reads the first rows of a large result and stops there.
    let slow = connect(port, "stream").await;
    let stream = slow.query_raw("SELECT * FROM event", std::iter::empty::<i64>()).await.unwrap();
    pin_mut!(stream);
    for _ in 0..10 {
        stream.next().await.unwrap().unwrap();
    }
    // Meanwhile another session writes and reads the same table.
    let other = connect(port, "stream").await;
    let write = other.execute("INSERT INTO event (name, n, x, ok) VALUES ('late', -1, 1.5, true)", &[]);
    assert_eq!(tokio::time::timeout(Duration::from_secs(20), write).await.expect("the write is not held up").unwrap(), 1);
    let read = other.query_one("SELECT n FROM event WHERE name = 'late'", &[]);
    let row = tokio::time::timeout(Duration::from_secs(20), read).await.expect("the read is not held up").unwrap();
    assert_eq!(row.get::<_, i64>(0), -1);
    // The slow client still gets every row it asked for (the read began before the write).
    let mut n = 10;
    while let Some(r) = stream.next().await {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, rows);
}

/// A CancelRequest (tokio-postgres' cancel token, as psql's Ctrl-C) stops a
/// long-running statement with 57014, over both protocols; the session goes on,
/// a cancel for an idle session changes nothing, and one session's cancel
/// stops no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_is_cancelled_and_the_session_goes_on() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let client = connect(port, "sqlite").await;
    // Billions of rows: minutes of work, so only a cancel ends it in time.
    let long = "SELECT sum(value) FROM generate_series(1, 100000000000)";
    for extended in [false, true] {
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            token.cancel_query(NoTls).await.expect("the cancel request is sent");
        });
        let started = std::time::Instant::now();
        let run = async {
            if extended { client.query(long, &[]).await.map(|_| ()) } else { client.simple_query(long).await.map(|_| ()) }
        };
        let err = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the query is cancelled").unwrap_err();
        assert_eq!(db_code(&err), "57014", "extended={extended}: {err:?}");
        assert!(started.elapsed() >= Duration::from_millis(400), "it ran until the cancel arrived");
        canceller.await.unwrap();
        let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
        assert_eq!(n, 4, "the session goes on after the cancel (extended={extended})");
    }
    // A cancel for an idle session does not cancel its next statement.
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
    // Another session's cancel reaches only that session.
    let other = connect(port, "sqlite").await;
    let token = other.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = other.simple_query(long).await.unwrap_err();
    assert_eq!(db_code(&err), "57014");
    canceller.await.unwrap();
    let rows = simple_rows(client.simple_query("SELECT sum(value) FROM generate_series(1, 1000000)").await.unwrap());
    assert_eq!(rows, vec![vec![Some("500000500000".into())]]);
}

/// Every logical type crosses the wire as the Postgres type a client expects,
/// in binary (tokio-postgres' extended protocol) and text (simple protocol),
/// and parameters of each scalar type bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_logical_type_over_the_wire() {
    use heavenbase::{EntityDef, FieldDef, LogicalType as T};
    use tokio_postgres::types::Type;
    let h = TestHome::new();
    let ws = h.open("types", heavenbase::Construction::preset("debug")).await;
    ws.register(
        EntityDef::new("thing")
            .field(FieldDef::new("qty", T::Integer))
            .field(FieldDef::new("price", T::Float))
            .field(FieldDef::new("ok", T::Boolean))
            .field(FieldDef::new("at", T::Timestamp))
            .field(FieldDef::new("day", T::Date))
            .field(FieldDef::new("kind", T::categorical(["a", "b"])))
            .field(FieldDef::new("tags", T::array_of(T::short_text())))
            .field(FieldDef::new("counts", T::array_of(T::Integer)))
            .field(FieldDef::new("meta", T::Json))
            .field(FieldDef::new("emb", T::vector(3)))
            .field(FieldDef::new("blob", T::Artifact)),
        false,
    )
    .await
    .unwrap();
    ws.upsert(
        "thing",
        serde_json::json!({"name": "one", "qty": 7, "price": 2.5, "ok": true, "at": "2024-01-02T03:04:05.678Z",
            "day": "2024-02-29", "kind": "b", "tags": ["x", "y z"], "counts": [1, 2, 3], "meta": {"color": "red", "n": 1},
            "emb": [0.5, 1.0, -2.25], "blob": "hi"}),
    )
    .await
    .unwrap();
    ws.upsert("thing", serde_json::json!({"name": "empty"})).await.unwrap();
    let port = start(ws).await;
    let client = connect(port, "types").await;
    let sql = "SELECT name, qty, price, ok, at, day, kind, tags, counts, meta, emb, blob FROM thing WHERE name = $1";

    // Binary results: the column types a driver decodes by.
    let stmt = client.prepare(sql).await.unwrap();
    let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        vec![
            Type::TEXT,
            Type::INT8,
            Type::FLOAT8,
            Type::BOOL,
            Type::TIMESTAMPTZ,
            Type::DATE,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::INT8_ARRAY,
            Type::JSON,
            Type::FLOAT4_ARRAY,
            Type::BYTEA
        ]
    );
    let row = client.query_one(&stmt, &[&"one"]).await.unwrap();
    assert_eq!(row.get::<_, i64>("qty"), 7);
    assert_eq!(row.get::<_, f64>("price"), 2.5);
    assert!(row.get::<_, bool>("ok"));
    let at: chrono::DateTime<chrono::Utc> = row.get("at");
    assert_eq!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "2024-01-02T03:04:05.678Z");
    assert_eq!(row.get::<_, chrono::NaiveDate>("day"), chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
    assert_eq!(row.get::<_, &str>("kind"), "b");
    assert_eq!(row.get::<_, Vec<String>>("tags"), vec!["x".to_string(), "y z".to_string()]);
    assert_eq!(row.get::<_, Vec<i64>>("counts"), vec![1, 2, 3]);
    assert_eq!(row.get::<_, serde_json::Value>("meta"), serde_json::json!({"color": "red", "n": 1}));
    assert_eq!(row.get::<_, Vec<f32>>("emb"), vec![0.5, 1.0, -2.25]);
    assert_eq!(row.get::<_, Vec<u8>>("blob"), b"hi".to_vec());
    // NULLs of every type.
    let empty = client.query_one(&stmt, &[&"empty"]).await.unwrap();
    for i in 1..types.len() {
        assert!(empty.try_get::<_, Option<String>>(i).map(|v| v.is_none()).unwrap_or(true), "column {i} is NULL");
    }
    assert_eq!(empty.get::<_, Option<Vec<f32>>>("emb"), None);
    assert_eq!(empty.get::<_, Option<serde_json::Value>>("meta"), None);

    // Text results, as Postgres prints them.
    let text = simple_rows(client.simple_query(&sql.replace("$1", "'one'")).await.unwrap());
    let text: Vec<&str> = text[0].iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    assert_eq!(
        text,
        vec![
            "one",
            "7",
            "2.5",
            "t",
            "2024-01-02 03:04:05.678+00",
            "2024-02-29",
            "b",
            "{x,\"y z\"}",
            "{1,2,3}",
            "{\"color\":\"red\",\"n\":1}",
            "{0.5,1,-2.25}",
            "\\x6869"
        ]
    );

    // Parameters of each scalar type, typed by the client.
    let at_param = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z").unwrap().with_timezone(&chrono::Utc);
    let day_param = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let found = client
        .query(
            "SELECT name FROM thing WHERE qty = $1 AND price > $2 AND ok = $3 AND at > $4 AND day = $5 AND kind = $6",
            &[&7i64, &2.0f64, &true, &at_param, &day_param, &"b"],
        )
        .await
        .unwrap();
    assert_eq!(found.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), vec!["one".to_string()]);
}

/// UPDATE and DELETE are planned once when prepared; each execution binds its
/// own parameters in that plan (never spliced into SQL text, so a value that
/// looks like SQL is stored as written), and Describe says they return no rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_updates_and_deletes_bind_parameters_in_one_plan() {
    use tokio_postgres::types::Type;
    let h = TestHome::new();
    let ws = load(&h, "sqlite+inmem").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite-inmem").await;
    let id = |n: &str| heavenbase::catalog::derive_object_id("product", n);

    let retitle = client.prepare("UPDATE product SET title = $1 WHERE name = $2").await.unwrap();
    assert!(retitle.columns().is_empty(), "an UPDATE returns no rows: {:?}", retitle.columns());
    assert_eq!(retitle.params()[1], Type::TEXT);
    let hostile = "It's'); DROP TABLE product; --";
    for (title, name) in [(hostile, "alpha"), ("Second", "beta"), ("Nobody", "nobody")] {
        let n = client.execute(&retitle, &[&title, &name]).await.unwrap();
        assert_eq!(n, u64::from(name != "nobody"), "{name}");
    }
    assert_eq!(ws.get("product", &id("alpha")).await.unwrap().unwrap()["title"], serde_json::json!(hostile));
    assert_eq!(ws.get("product", &id("beta")).await.unwrap().unwrap()["title"], serde_json::json!("Second"));

    // A computed value keeps its type: the parameter is described as int8.
    let bump = client.prepare("UPDATE product SET qty = qty + $1 WHERE name = $2").await.unwrap();
    assert_eq!(bump.params()[0], Type::INT8);
    for _ in 0..3 {
        assert_eq!(client.execute(&bump, &[&10i64, &"alpha"]).await.unwrap(), 1);
    }
    assert_eq!(ws.get("product", &id("alpha")).await.unwrap().unwrap()["qty"], serde_json::json!(31));

    let delete = client.prepare("DELETE FROM product WHERE name = $1").await.unwrap();
    assert!(delete.columns().is_empty());
    assert_eq!(client.execute(&delete, &[&"gamma"]).await.unwrap(), 1);
    assert_eq!(client.execute(&delete, &[&"gamma"]).await.unwrap(), 0);
    assert_eq!(client.execute(&delete, &[&hostile]).await.unwrap(), 0);
    assert_eq!(ws.count("product").await.unwrap(), 3);
    assert!(ws.audit().await.unwrap().ok());
}

/// Serving a workspace gives the server's sessions pg_catalog and the
/// functions clients need, without changing the workspace's own session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_leaves_the_workspace_session_unchanged() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let before = crate::common::cells(&ws.sql("SELECT version()").await.unwrap());
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    let version: String = client.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(version.starts_with("PostgreSQL"), "{version}");
    let n: i64 =
        client.query_one("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'product'", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    // The workspace's own session: as it was.
    assert_eq!(crate::common::cells(&ws.sql("SELECT version()").await.unwrap()), before);
    let e = ws.sql("SELECT * FROM pg_catalog.pg_class").await.unwrap_err();
    assert_eq!(e.kind(), heavenbase::ErrorKind::UnknownEntity, "{e:?}");
    // An entity registered after the server started is served.
    ws.sql("CREATE TABLE later (x BIGINT)").await.unwrap();
    client.simple_query("INSERT INTO later (name, x) VALUES ('one', 1)").await.unwrap();
    let x: i64 = client.query_one("SELECT x FROM later", &[]).await.unwrap().get(0);
    assert_eq!(x, 1);
}

/// `COPY … FROM STDIN` over the extended protocol (tokio-postgres' `copy_in`):
/// the rows land through the write path; a bad line fails the whole COPY with
/// its SQLSTATE and writes nothing; the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_copy_in_over_the_extended_protocol() {
    use futures::SinkExt;
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    let copy = |data: &'static str| {
        let client = &client;
        async move {
            let sink =
                client.copy_in::<_, &'static [u8]>("COPY product (name, title, price, tags) FROM STDIN (FORMAT csv)").await?;
            futures::pin_mut!(sink);
            sink.send(data.as_bytes()).await?;
            sink.finish().await
        }
    };
    let n = copy("eta,\"Eta, the lamp\",7.5,\"{a,b}\"\ntheta,Theta,8,{}\n").await.unwrap();
    assert_eq!(n, 2);
    let eta = ws.get("product", &heavenbase::catalog::derive_object_id("product", "eta")).await.unwrap().unwrap();
    assert_eq!(
        (eta["title"].clone(), eta["price"].clone(), eta["tags"].clone()),
        (serde_json::json!("Eta, the lamp"), serde_json::json!(7.5), serde_json::json!(["a", "b"]))
    );
    // The last line is bad: nothing of this COPY is written.
    let err = copy("iota,Iota,1,{}\nkappa,Kappa,cheap,{}\n").await.unwrap_err();
    assert_eq!(db_code(&err), "22P02", "{err:?}");
    assert!(err.as_db_error().unwrap().message().contains("product.price"), "{err:?}");
    assert_eq!(ws.count("product").await.unwrap(), 6);
    let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 6);
}

/// DDL over the wire: DROP TABLE and TRUNCATE are seen by a new connection and
/// after a server restart (a new process opening the workspace); a statement
/// the workspace cannot keep is refused with 0A000, in both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_over_the_wire_lasts_or_is_refused() {
    let h = TestHome::new();
    {
        let ws = h.open("wddl", heavenbase::Construction::preset("embedded")).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve_on(listener, vec![ws], &ServeOptions::default(), async {
                let _ = stopped.await;
            })
            .await
        });
        let client = connect(port, "wddl").await;
        client.batch_execute("CREATE TABLE t1 (a integer, b integer, c varchar(20))").await.unwrap();
        client.batch_execute("CREATE TABLE t2 (a integer)").await.unwrap();
        // Rows without ids or names, in both protocols.
        let n = client.execute("INSERT INTO t1 (a, b, c) VALUES (1, 2, 'x'), (3, 4, 'y')", &[]).await.unwrap();
        assert_eq!(n, 2);
        let n = client.execute("INSERT INTO t2 (a) VALUES ($1)", &[&7i64]).await.unwrap();
        assert_eq!(n, 1);
        let ids: Vec<String> =
            client.query("SELECT object_id FROM t1 ORDER BY a", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert!(ids.len() == 2 && ids[0] < ids[1], "generated ids in creation order: {ids:?}");
        let tags: Vec<String> = client
            .simple_query("TRUNCATE t2; DROP TABLE t1")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(_) => Some("done".to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(tags.len(), 2);
        for (sql, extended) in [
            ("CREATE MATERIALIZED VIEW v AS SELECT 1 AS one", false),
            ("ALTER TABLE t2 ADD CONSTRAINT positive CHECK (a > 0)", true),
        ] {
            let err =
                if extended { client.execute(sql, &[]).await.unwrap_err() } else { client.batch_execute(sql).await.unwrap_err() };
            assert_eq!(db_code(&err), "0A000", "{sql}: {err}");
        }
        client.batch_execute("CREATE INDEX ON t2 (a)").await.unwrap();
        let other = connect(port, "wddl").await;
        let err = other.simple_query("SELECT * FROM t1").await.unwrap_err();
        assert_eq!(db_code(&err), "42P01", "{err}");
        assert!(other.simple_query("SELECT * FROM v").await.is_err(), "no view was made");
        let n: i64 = other.query_one("SELECT count(*) FROM t2", &[]).await.unwrap().get(0);
        assert_eq!(n, 0);
        // RENAME TO over the extended protocol, seen by the other connection.
        client.execute("INSERT INTO t2 (a) VALUES (7)", &[]).await.unwrap();
        client.execute("ALTER TABLE t2 RENAME TO t3", &[]).await.unwrap();
        let a: i64 = other.query_one("SELECT CAST(a AS bigint) FROM t3", &[]).await.unwrap().get(0);
        assert_eq!(a, 7);
        assert_eq!(db_code(&other.simple_query("SELECT * FROM t2").await.unwrap_err()), "42P01");
        if has_psql() {
            let (ok, _, stderr) =
                psql_run(&format!("host=127.0.0.1 port={port} user=postgres dbname=wddl"), &["-c", "DROP TABLE t3"], None).await;
            assert!(ok, "{stderr}");
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
    }
    // A restarted server (a new process's workspace) sees the drops.
    let ws = Workspace::load_in(&h.home, "wddl").await.unwrap();
    let expected: Vec<String> = if has_psql() { vec![] } else { vec!["t2".into()] };
    assert_eq!(ws.entities(), expected);
    let port = start(ws).await;
    let client = connect(port, "wddl").await;
    let err = client.simple_query("SELECT * FROM t1").await.unwrap_err();
    assert_eq!(db_code(&err), "42P01", "{err}");
}

/// ALTER TABLE and views over the wire: each is seen by a new connection, by
/// psql's `\d` and `\dv`, by pg_views, and after a server restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_and_views_over_the_wire_last() {
    let h = TestHome::new();
    let priced = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, f64)> { rows.iter().map(|r| (r.get(0), r.get(1))).collect() };
    let expected = vec![("a".to_string(), 2.5), ("b".to_string(), 2.5)];
    {
        let ws = h.open("walter", heavenbase::Construction::preset("embedded")).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve_on(listener, vec![ws], &ServeOptions::default(), async {
                let _ = stopped.await;
            })
            .await
        });
        let client = connect(port, "walter").await;
        client.batch_execute("CREATE TABLE item (id serial PRIMARY KEY, title varchar(20))").await.unwrap();
        let n = client.execute("INSERT INTO item (title) VALUES ($1), ($2)", &[&"a", &"b"]).await.unwrap();
        assert_eq!(n, 2);
        // Simple protocol, then extended.
        client.batch_execute("ALTER TABLE item ADD COLUMN price float DEFAULT 2.5").await.unwrap();
        assert_eq!(client.execute("ALTER TABLE item RENAME COLUMN title TO label", &[]).await.unwrap(), 0);
        client.batch_execute("CREATE VIEW priced AS SELECT id, label, price FROM item WHERE price > 1").await.unwrap();
        let other = connect(port, "walter").await;
        assert_eq!(priced(other.query("SELECT label, price FROM priced ORDER BY id", &[]).await.unwrap()), expected);
        let err = other.query("SELECT title FROM item", &[]).await.unwrap_err();
        assert_eq!(db_code(&err), "42703", "{err}");
        let views: Vec<String> = other
            .query("SELECT viewname FROM pg_views WHERE schemaname = 'public'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(views, ["priced"]);
        let err = other.execute("DROP TABLE item", &[]).await.unwrap_err();
        assert_eq!(db_code(&err), "2BP01", "{err}");
        let err = other.batch_execute("ALTER TABLE item DROP COLUMN label").await.unwrap_err();
        assert_eq!(db_code(&err), "2BP01", "{err}");
        if has_psql() {
            let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=walter");
            let (ok, out, stderr) = psql_run(&conninfo, &["-c", "\\d item"], None).await;
            assert!(ok && out.contains("label") && out.contains("price") && !out.contains("title"), "{out}{stderr}");
            let (ok, out, stderr) = psql_run(&conninfo, &["-c", "\\dv"], None).await;
            assert!(ok && out.contains("priced"), "{out}{stderr}");
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
    }
    // A restarted server (a new process's workspace) has the altered table and the view.
    let ws = Workspace::load_in(&h.home, "walter").await.unwrap();
    let port = start(ws).await;
    let client = connect(port, "walter").await;
    assert_eq!(priced(client.query("SELECT label, price FROM priced ORDER BY id", &[]).await.unwrap()), expected);
    client.batch_execute("DROP VIEW priced; ALTER TABLE item DROP COLUMN price").await.unwrap();
    let err = client.query("SELECT price FROM item", &[]).await.unwrap_err();
    assert_eq!(db_code(&err), "42703", "{err}");
    let n: i64 = client.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
}

/// UPDATE and DELETE … RETURNING over both protocols, with their own command tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_returning_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("wret", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let client = connect(port, "wret").await;
    client.batch_execute("CREATE TABLE item (id serial PRIMARY KEY, qty integer)").await.unwrap();
    client.execute("INSERT INTO item (qty) VALUES (1), (2), (3)", &[]).await.unwrap();
    let rows = client.query("UPDATE item SET qty = qty + $1 WHERE id = $2 RETURNING id, qty", &[&10i64, &2i64]).await.unwrap();
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(2, 12)]);
    let messages = client.simple_query("DELETE FROM item WHERE qty < 3 RETURNING id").await.unwrap();
    let tag = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(1));
    assert_eq!(simple_rows(messages), vec![vec![Some("1".to_string())]]);
    let n: i64 = client.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
}

/// Long AND/OR chains (the filters ORMs and BI tools generate) are answered
/// and the server goes on serving: as written, planning them recursed once
/// per term and overflowed a worker's stack, aborting every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_boolean_chains_are_answered_and_the_server_goes_on() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    // qty: alpha 1, beta 2, gamma 3, delta NULL.
    let ors = (0..5000).map(|i| format!("qty = {i}")).collect::<Vec<_>>().join(" OR ");
    let count = format!("SELECT count(*) FROM product WHERE {ors}");
    let n: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 3, "extended protocol");
    assert_eq!(simple_rows(client.simple_query(&count).await.unwrap()), vec![vec![Some("3".into())]], "simple protocol");
    let ands = (0..2000).map(|i| format!("qty <> {}", i + 10)).collect::<Vec<_>>().join(" AND ");
    let n: i64 = client.query_one(&format!("SELECT count(*) FROM product WHERE {ands}"), &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    let n = client.execute(&format!("UPDATE product SET title = 'chained' WHERE {ors}"), &[]).await.unwrap();
    assert_eq!(n, 3);
    // The Rust API plans the same statement on this test's 2 MiB stacks.
    let got = ws.sql(&count).await.unwrap();
    assert_eq!(crate::common::cells(&got), crate::common::rows(&[&["3"]]));
    // 50,000 OR terms, and a 100,000-item IN list: more parameters than SQLite
    // binds in one statement, so the filter stays with DataFusion.
    let ors = (0..50_000).map(|i| format!("qty = {i}")).collect::<Vec<_>>().join(" OR ");
    let n: i64 = client.query_one(&format!("SELECT count(*) FROM product WHERE {ors}"), &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    let items = (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let n: i64 = client.query_one(&format!("SELECT count(*) FROM product WHERE qty IN ({items})"), &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    let other = connect(port, "sqlite").await;
    let n: i64 = other.query_one("SELECT count(*) FROM product WHERE title = 'chained'", &[]).await.unwrap().get(0);
    assert_eq!(n, 3, "the server goes on");
}

/// A statement that panics (a bug, here a function that panics) fails alone
/// with XX000: the session, the server and the Rust API go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_statement_fails_alone_with_xx000() {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let boom = create_udf(
        "boom",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Volatile,
        std::sync::Arc::new(|_: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> { panic!("boom was called") }),
    );
    ws.session().register_udf(boom);
    let err = ws.sql("SELECT boom(qty) FROM product").await.unwrap_err();
    assert_eq!(err.sqlstate(), "XX000", "{err}");
    assert!(err.to_string().contains("boom was called"), "{err}");
    assert_eq!(ws.count("product").await.unwrap(), 4, "the workspace goes on");

    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    let err = client.simple_query("SELECT boom(qty) FROM product").await.unwrap_err();
    assert_eq!(db_code(&err), "XX000", "{err}");
    let err = client.query("SELECT boom(qty) FROM product WHERE qty > $1", &[&0i64]).await.unwrap_err();
    assert_eq!(db_code(&err), "XX000", "{err}");
    let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 4, "the same session goes on");
}

/// SHOW reports what `version()`, the startup parameters and
/// `current_setting()` report (libpqxx programs such as sqlsmith read
/// `SHOW server_version_num` as a number on connect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_reports_the_server_settings() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let client = connect(port, "sqlite").await;
    for (sql, want) in [
        ("SHOW server_version_num", "150019"),
        ("SHOW server_version", "15.19"),
        ("SHOW transaction isolation level", "read committed"),
        ("SHOW standard_conforming_strings", "on"),
    ] {
        assert_eq!(simple_rows(client.simple_query(sql).await.unwrap()), vec![vec![Some(want.to_string())]], "{sql}");
        let got: String = client.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(got, want, "{sql} (extended)");
    }
    let same: String = client.query_one("SELECT current_setting('server_version_num')", &[]).await.unwrap().get(0);
    assert_eq!(same, "150019");
    // A value the session set wins, as in Postgres.
    client.batch_execute("SET application_name = 'probe'").await.unwrap();
    let app = simple_rows(client.simple_query("SHOW application_name").await.unwrap());
    assert_eq!(app, vec![vec![Some("probe".to_string())]]);
}

/// A table with an integer primary key over the wire: serial ids, duplicate
/// keys refused with 23505, and `WHERE id = $1` answered by the lookup fast
/// path with the same rows as the general plan, for int8, int4 and untyped
/// text parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_primary_keys_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("wkeys", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let client = connect(port, "wkeys").await;
    client.batch_execute("CREATE TABLE book (id serial PRIMARY KEY, title varchar(80) NOT NULL, year integer)").await.unwrap();
    for (title, year) in [("Dune", 1965i64), ("Emma", 1815), ("Ulysses", 1922)] {
        let n = client.execute("INSERT INTO book (title, year) VALUES ($1, $2)", &[&title, &year]).await.unwrap();
        assert_eq!(n, 1);
    }
    let dup = client.execute("INSERT INTO book (id, title) VALUES (2, 'Again')", &[]).await.unwrap_err();
    assert_eq!(db_code(&dup), "23505", "{dup}");
    let fast = client.prepare("SELECT title, year FROM book WHERE id = $1").await.unwrap();
    let general = client.prepare("SELECT title, year FROM book WHERE id = $1 AND 1 = 1").await.unwrap();
    let typed = client.prepare_typed("SELECT title FROM book WHERE id = $1", &[tokio_postgres::types::Type::INT4]).await.unwrap();
    for id in 1..=4i64 {
        let a: Vec<(String, Option<i64>)> =
            client.query(&fast, &[&id]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
        let b: Vec<(String, Option<i64>)> =
            client.query(&general, &[&id]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(a, b, "id {id}");
        assert_eq!(a.len(), usize::from(id <= 3), "id {id}");
        let c: Vec<String> = client.query(&typed, &[&(id as i32)]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(c, a.iter().map(|r| r.0.clone()).collect::<Vec<_>>());
    }
    assert_eq!(client.query_one(&fast, &[&2i64]).await.unwrap().get::<_, String>(0), "Emma");
    let rows = simple_rows(client.simple_query("SELECT title FROM book WHERE id = 3").await.unwrap());
    assert_eq!(rows, vec![vec![Some("Ulysses".into())]]);
    // INSERT … RETURNING gives the drawn id, in both protocols (as ORMs read new keys).
    let row = client
        .query_one("INSERT INTO book (title, year) VALUES ($1, $2) RETURNING id, title", &[&"Beloved", &1987i64])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), (4, "Beloved".to_string()));
    let msgs = client.simple_query("INSERT INTO book (title) VALUES ('Kim'), ('Nana') RETURNING id").await.unwrap();
    let tag = msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(simple_rows(msgs), vec![vec![Some("5".into())], vec![Some("6".into())]]);
    assert_eq!(tag, Some(2));
    let dup = client.query("INSERT INTO book (id, title) VALUES (1, 'Again') RETURNING id", &[]).await.unwrap_err();
    assert_eq!(db_code(&dup), "23505", "{dup}");
    if has_psql() {
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=wkeys");
        let (ok, out, stderr) =
            psql_run(&conninfo, &["-At", "-c", "INSERT INTO book (title) VALUES ('Lolita') RETURNING id"], None).await;
        assert!(ok, "{stderr}");
        assert!(out.lines().any(|l| l == "7") && out.contains("INSERT 0 1"), "{out}");
    }
    // Reads by key see every write: an UPDATE through the general path.
    client.execute("UPDATE book SET year = 1966 WHERE id = $1", &[&1i64]).await.unwrap();
    assert_eq!(client.query_one(&fast, &[&1i64]).await.unwrap().get::<_, Option<i64>>(1), Some(1966));
    // ON CONFLICT with parameters answers INSERT 0 n, in both protocols.
    let upsert = "INSERT INTO book (id, title, year) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET year = excluded.year";
    assert_eq!(client.execute(upsert, &[&1i64, &"Dune", &2021i64]).await.unwrap(), 1);
    assert_eq!(client.query_one(&fast, &[&1i64]).await.unwrap().get::<_, Option<i64>>(1), Some(2021));
    let msgs =
        client.simple_query("INSERT INTO book (id, title) VALUES (1, 'x'), (2, 'y') ON CONFLICT DO NOTHING").await.unwrap();
    assert!(matches!(msgs.last(), Some(SimpleQueryMessage::CommandComplete(0))), "{:?}", msgs.len());
    // Concurrent upserts of one counter row lose no increment: the key is
    // locked from the existence check to the write.
    client.batch_execute("CREATE TABLE hits (page varchar(40) PRIMARY KEY, n integer)").await.unwrap();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let c = connect(port, "wkeys").await;
        clients.push(tokio::spawn(async move {
            let bump = c
                .prepare("INSERT INTO hits (page, n) VALUES ($1, 1) ON CONFLICT (page) DO UPDATE SET n = hits.n + 1")
                .await
                .unwrap();
            for _ in 0..25 {
                assert_eq!(c.execute(&bump, &[&"/home"]).await.unwrap(), 1);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let n: i64 = client.query_one("SELECT n FROM hits WHERE page = '/home'", &[]).await.unwrap().get(0);
    assert_eq!(n, 200);
}

/// A table made by SQL has the Postgres shape over the wire too: positional
/// INSERTs (both protocols), `SELECT *` (general and lookup paths), COPY
/// without a column list and psql's `\d` cover its declared columns, while
/// object_id stays selectable; pg_attribute numbers the declared columns 1…n
/// and the system columns below zero, as Postgres does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_tables_have_the_postgres_shape_over_the_wire() {
    use futures::SinkExt;
    let h = TestHome::new();
    let ws = h.open("wshape", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let client = connect(port, "wshape").await;
    client.batch_execute("CREATE TABLE t1 (a integer, b integer, c varchar(20))").await.unwrap();
    client.batch_execute("INSERT INTO t1 VALUES (1, 2, 'x')").await.unwrap();
    assert_eq!(client.execute("INSERT INTO t1 VALUES ($1, $2, $3)", &[&3i64, &4i64, &"y"]).await.unwrap(), 1);
    let sink = client.copy_in::<_, &'static [u8]>("COPY t1 FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(b"5\t6\tz\n".as_slice()).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);

    let star = client.prepare("SELECT * FROM t1 ORDER BY a").await.unwrap();
    let names: Vec<&str> = star.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let got: Vec<(i64, i64, String)> =
        client.query(&star, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got, [(1, 2, "x".to_string()), (3, 4, "y".into()), (5, 6, "z".into())]);
    let simple = simple_rows(client.simple_query("SELECT * FROM t1 WHERE a = 5").await.unwrap());
    assert_eq!(simple, vec![vec![Some("5".into()), Some("6".into()), Some("z".into())]]);
    // object_id by name, then the lookup fast path with `*`.
    let id: String = client.query_one("SELECT object_id FROM t1 WHERE a = 3", &[]).await.unwrap().get(0);
    let by_id = client.prepare("SELECT * FROM t1 WHERE object_id = $1").await.unwrap();
    assert_eq!(by_id.columns().len(), 3);
    let row = client.query_one(&by_id, &[&id]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(2)), (3, "y".to_string()));

    // The catalog describes the table as its `SELECT *`.
    let attrs = client
        .query(
            "SELECT a.attname, a.attnum FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON a.attrelid = c.oid \
             WHERE c.relname = 't1' ORDER BY a.attnum",
            &[],
        )
        .await
        .unwrap();
    let attrs: Vec<(String, i64)> = attrs.iter().map(|r| (r.get(0), i64::from(r.get::<_, i16>(1)))).collect();
    assert_eq!(attrs, [("name".into(), -2), ("object_id".into(), -1), ("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    if has_psql() {
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=wshape");
        let (ok, out, stderr) = psql_run(&conninfo, &["-c", "\\d t1"], None).await;
        assert!(ok, "{stderr}");
        let columns: Vec<&str> = out.lines().filter(|l| l.contains('|')).filter_map(|l| l.split('|').next()).collect();
        assert_eq!(columns, ["a", "b", "c"], "{out}");
        let (ok, out, stderr) = psql_run(&conninfo, &["-c", "COPY t1 TO STDOUT"], None).await;
        assert!(ok, "{stderr}");
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        assert_eq!(lines, ["1\t2\tx", "3\t4\ty", "5\t6\tz"], "{out}");
        let (ok, out, stderr) = psql_run(&conninfo, &["-c", "INSERT INTO t1 VALUES (7, 8, 'w')"], None).await;
        assert!(ok && out.contains("INSERT 0 1"), "{out} {stderr}");
    }
}

/// Result columns are named as Postgres names them (`count`, `round`,
/// `?column?`, a cast by what it casts), in both protocols and in `ws.sql`;
/// aliases are kept, and two items may share a name, as in Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_columns_are_named_as_postgres_names_them() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    let sql = "SELECT count(*), round(avg(price), 2), 1 + 1, max(qty)::text, CASE WHEN true THEN 1 END, \
               (SELECT min(title) FROM product) FROM product";
    let want = ["count", "round", "?column?", "max", "case", "min"];
    let prepared = client.prepare(sql).await.unwrap();
    assert_eq!(prepared.columns().iter().map(|c| c.name()).collect::<Vec<_>>(), want);
    let row = client.query_one(&prepared, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>("count"), 4);
    assert_eq!(simple_and_api_names(&client, &ws, sql).await, [want, want]);
    // Grouped and ordered by the expression, named by Postgres' rule; aliases kept.
    let rows = client
        .query("SELECT upper(title), count(*) AS n FROM product GROUP BY upper(title) ORDER BY count(*) DESC, upper(title)", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["upper", "n"]);
    assert_eq!(rows.len(), 4);
    // Two columns may share a name, as in Postgres: over both protocols, in
    // the Rust API, and for subqueries (which DataFusion names alike).
    let twice = client.prepare("SELECT 1, 2").await.unwrap();
    let names: Vec<&str> = twice.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["?column?", "?column?"]);
    let sql = "SELECT (SELECT count(*) FROM product), (SELECT count(*) FROM product WHERE price > 10), 1, 2 AS x, 3 AS x";
    let rows = client.query(sql, &[]).await.unwrap();
    assert_eq!(rows[0].columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["count", "count", "?column?", "x", "x"]);
    assert_eq!(rows[0].get::<_, i64>(2), 1);
    assert_eq!(rows[0].get::<_, i64>(4), 3);
    let shared = ["count", "count", "?column?", "x", "x"];
    assert_eq!(simple_and_api_names(&client, &ws, sql).await, [shared, shared]);
    // An alias may share the name of the qualified column ORDER BY sorts by
    // (DataFusion found the pair ambiguous): `p.price` is the input column,
    // a bare `price` the output one, as in Postgres.
    let sql = "SELECT p.name, round(p.price / 10) AS price FROM product p WHERE p.price IS NOT NULL ORDER BY p.price DESC";
    let rows = client.query(sql, &[]).await.unwrap();
    assert_eq!(rows[0].columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["name", "price"]);
    let got: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("delta".to_string(), 4.0), ("beta".into(), 2.0), ("alpha".into(), 1.0)]);
    let named = [vec!["name".to_string(), "price".into()], vec!["name".into(), "price".into()]];
    assert_eq!(simple_and_api_names(&client, &ws, sql).await, named);
    let sql = "SELECT p.name, -p.price AS price FROM product p WHERE p.price IS NOT NULL ORDER BY price";
    let names: Vec<String> = client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["delta", "beta", "alpha"], "a bare price is the output column");
}

/// The result column names of `sql` as the simple protocol's RowDescription
/// gives them, and as `ws.sql`'s batches do.
async fn simple_and_api_names(client: &tokio_postgres::Client, ws: &Workspace, sql: &str) -> [Vec<String>; 2] {
    let msgs = client.simple_query(sql).await.unwrap();
    let described = msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::RowDescription(cols) => Some(cols.iter().map(|c| c.name().to_string()).collect()),
            _ => None,
        })
        .unwrap();
    let batches = ws.sql(sql).await.unwrap();
    [described, batches[0].schema().fields().iter().map(|f| f.name().clone()).collect()]
}

/// Transaction blocks over the wire: ROLLBACK undoes, COMMIT keeps, other
/// sessions see nothing before COMMIT, a failed statement fails the block
/// (25P02, COMMIT answers ROLLBACK), savepoints undo their part, and a client
/// that goes away inside a block leaves nothing; with psql, tokio-postgres and
/// psycopg (tests/clients/psycopg_transactions.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_blocks_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("wtx", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let mut client = connect(port, "wtx").await;
    let watcher = connect(port, "wtx").await;
    client.batch_execute("CREATE TABLE item (id integer PRIMARY KEY, qty integer)").await.unwrap();
    client.batch_execute("INSERT INTO item VALUES (1, 10), (2, 20), (3, 30)").await.unwrap();
    async fn n(c: &tokio_postgres::Client) -> i64 {
        c.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get(0)
    }

    // One simple query: the block and its ROLLBACK.
    client.batch_execute("BEGIN; DELETE FROM item; INSERT INTO item VALUES (9, 90); ROLLBACK").await.unwrap();
    assert_eq!(n(&client).await, 3);

    // tokio-postgres' Transaction: reads its own writes, others do not, COMMIT keeps.
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO item VALUES ($1, $2)", &[&4i64, &40i64]).await.unwrap();
    tx.execute("UPDATE item SET qty = qty + 1 WHERE id = $1", &[&1i64]).await.unwrap();
    let inside: i64 = tx.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get(0);
    assert_eq!(inside, 4);
    // A cursor declared in the block reads the block's rows too.
    tx.batch_execute("DECLARE c CURSOR FOR SELECT id, qty FROM item ORDER BY id").await.unwrap();
    let fetched = simple_rows(tx.simple_query("FETCH ALL FROM c").await.unwrap());
    assert_eq!(fetched.len(), 4);
    assert_eq!(fetched[0], vec![Some("1".into()), Some("11".into())]);
    assert_eq!(fetched[3], vec![Some("4".into()), Some("40".into())]);
    tx.batch_execute("CLOSE c").await.unwrap();
    assert_eq!(n(&watcher).await, 3, "another session sees nothing before COMMIT");
    // A savepoint undoes only its part.
    let sp = {
        let mut tx = tx;
        let sp = tx.savepoint("sp").await.unwrap();
        sp.execute("DELETE FROM item", &[]).await.unwrap();
        let none: i64 = sp.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get(0);
        assert_eq!(none, 0);
        sp.rollback().await.unwrap();
        let back: i64 = tx.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get(0);
        assert_eq!(back, 4);
        tx
    };
    sp.commit().await.unwrap();
    assert_eq!(n(&watcher).await, 4);
    let qty: i64 = watcher.query_one("SELECT qty FROM item WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(qty, 11);

    // A failed statement fails the block: 25P02, then COMMIT answers ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    client.execute("DELETE FROM item WHERE id = 4", &[]).await.unwrap();
    let e = client.execute("INSERT INTO item VALUES (1, 0)", &[]).await.unwrap_err();
    assert_eq!(db_code(&e), "23505");
    let e = client.query_one("SELECT count(*) FROM item", &[]).await.unwrap_err();
    assert_eq!(db_code(&e), "25P02");
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(n(&client).await, 4, "the failed block's DELETE was rolled back");

    // A client that goes away inside a block leaves nothing, and its rows are free.
    let gone = connect(port, "wtx").await;
    gone.batch_execute("BEGIN; DELETE FROM item WHERE id = 2").await.unwrap();
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let updated = tokio::time::timeout(Duration::from_secs(10), client.execute("UPDATE item SET qty = 21 WHERE id = 2", &[]))
        .await
        .expect("the departed block's claim is released")
        .unwrap();
    assert_eq!(updated, 1);
    assert_eq!(n(&watcher).await, 4);

    // psql: the tags it prints, and COMMIT of a failed block.
    if has_psql() {
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=wtx");
        let script = "BEGIN;\nDELETE FROM item;\nSELECT count(*) FROM item;\nROLLBACK;\nSELECT count(*) FROM item;\n\
                      BEGIN;\nINSERT INTO item VALUES (1, 1);\nSELECT 1;\nCOMMIT;\n";
        let (_, out, err) = psql_run(&conninfo, &["-v", "ON_ERROR_STOP=0", "-a"], Some(script)).await;
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.contains(&"0") && lines.contains(&"4"), "{out}\n{err}");
        assert!(err.contains("duplicate key") && err.contains("current transaction is aborted"), "{err}");
        assert_eq!(lines.last(), Some(&"ROLLBACK"), "{out}");
    }
    assert_eq!(n(&client).await, 4);

    if let Some(out) = run_client(
        "python3",
        &[clients_dir().join("psycopg_transactions.py").display().to_string(), port.to_string(), "wtx".into()],
        &["-c", "import psycopg"],
    )
    .await
    {
        assert_eq!(out.trim(), "ok");
    }
}

/// No lost updates: 16 autocommit clients × 200 `UPDATE … SET v = v + 1` on
/// one row end at exactly 3,200 (on Postgres too: postgres.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_no_update() {
    let h = TestHome::new();
    let ws = h.open("winc", heavenbase::Construction::preset("embedded")).await;
    increments_add_up(ws, "winc", 16, 200).await;
}

/// `clients` connections each run `each` increments of one row over the wire.
pub(crate) async fn increments_add_up(ws: Workspace, db: &'static str, clients: usize, each: usize) {
    let port = start(ws.clone()).await;
    let client = connect(port, db).await;
    client.batch_execute("CREATE TABLE c (id integer PRIMARY KEY, v integer)").await.unwrap();
    client.batch_execute("INSERT INTO c VALUES (1, 0), (2, 0)").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let c = connect(port, db).await;
            for _ in 0..each {
                c.execute("UPDATE c SET v = v + 1 WHERE id = $1", &[&1i64]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v: Vec<(i64, i64)> =
        client.query("SELECT id, v FROM c ORDER BY id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(v, [(1, (clients * each) as i64), (2, 0)]);
}

/// `--max-connections`: a client past the limit is told why (FATAL 53300, as
/// Postgres words it, to tokio-postgres and psql alike) instead of having its
/// socket dropped; a cancel request still gets through while the server is
/// full; a closed session frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_with_53300() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start_with(vec![ws], ServeOptions { max_connections: 2, ..Default::default() }).await;
    let first = connect(port, "sqlite").await;
    let second = connect(port, "sqlite").await;
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=sqlite");
    let refused = tokio_postgres::connect(&conninfo, NoTls).await.err().expect("a third connection is refused");
    assert_eq!(db_code(&refused), "53300", "{refused:?}");
    assert_eq!(refused.as_db_error().unwrap().message(), "sorry, too many clients already");
    assert_eq!(refused.as_db_error().unwrap().severity(), "FATAL");
    if has_psql() {
        let (ok, _, err) = psql_run(&conninfo, &["-c", "SELECT 1"], None).await;
        assert!(!ok && err.contains("sorry, too many clients already"), "{err}");
    }
    // The sessions that are in go on, and a cancel request reaches one of them
    // though it comes on a connection the full server does not keep.
    let n: i64 = second.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
    let token = first.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let long = first.simple_query("SELECT sum(value) FROM generate_series(1, 100000000000)");
    let err = tokio::time::timeout(Duration::from_secs(60), long).await.expect("the cancel arrives").unwrap_err();
    assert_eq!(db_code(&err), "57014");
    canceller.await.unwrap();
    // A session that ends frees its place.
    drop(second);
    let mut again = None;
    for _ in 0..50 {
        match tokio_postgres::connect(&conninfo, NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                again = Some(client);
                break;
            }
            Err(e) => {
                assert_eq!(db_code(&e), "53300");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let again = again.expect("a place is free again");
    let n: i64 = again.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 4);
}

/// `statement_timeout` stops a statement while it plans, runs or streams its
/// rows (57014, Postgres' message), in both protocols; the session goes on;
/// `SET statement_timeout = 0` lifts it; the server's default applies to new
/// sessions and SHOW reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_stops_running_statements() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let long = "SELECT sum(value) FROM generate_series(1, 100000000000)";
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    client.batch_execute("SET statement_timeout = '500ms'").await.unwrap();
    for extended in [false, true] {
        let started = std::time::Instant::now();
        let run = async {
            if extended { client.query(long, &[]).await.map(|_| ()) } else { client.simple_query(long).await.map(|_| ()) }
        };
        let err = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the timeout stops it").unwrap_err();
        assert_eq!(db_code(&err), "57014", "extended={extended}: {err:?}");
        assert_eq!(err.as_db_error().unwrap().message(), "canceling statement due to statement timeout");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(30), "extended={extended}: {took:?}");
        let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
        assert_eq!(n, 4, "the session goes on (extended={extended})");
    }
    // A write within the limit happens; the limit is lifted with 0.
    assert_eq!(client.execute("INSERT INTO product (name, price) VALUES ('timely', 1.0)", &[]).await.unwrap(), 1);
    client.batch_execute("SET statement_timeout = 0").await.unwrap();
    let rows = simple_rows(client.simple_query("SELECT sum(value) FROM generate_series(1, 20000000)").await.unwrap());
    assert_eq!(rows, vec![vec![Some("200000010000000".into())]]);

    // The server's default: every new session starts with it.
    let opts = ServeOptions {
        timeouts: heavenbase_pgwire::Timeouts { statement: Some(Duration::from_millis(400)), ..Default::default() },
        ..Default::default()
    };
    let port = start_with(vec![ws], opts).await;
    let client = connect(port, "sqlite").await;
    let shown = simple_rows(client.simple_query("SHOW statement_timeout").await.unwrap());
    assert_eq!(shown, vec![vec![Some("400ms".into())]]);
    client.batch_execute("SET statement_timeout = '2s'").await.unwrap();
    let shown = simple_rows(client.simple_query("SHOW statement_timeout").await.unwrap());
    assert_eq!(shown, vec![vec![Some("2s".into())]], "as Postgres shows it");
    client.batch_execute("SET statement_timeout = '400ms'").await.unwrap();
    let err = client.simple_query(long).await.unwrap_err();
    assert_eq!(db_code(&err), "57014");
    let n: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
    assert_eq!(n, 5);
}

/// `idle_in_transaction_session_timeout`: a session idle inside a block is
/// closed with FATAL 25P03 and its block rolled back; idle outside a block it
/// stays. `idle_session_timeout` closes idle sessions with 57P05. SET and SHOW
/// speak Postgres' units.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_by_their_timeouts() {
    let h = TestHome::new();
    let ws = h.open("idle", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let watcher = connect(port, "idle").await;
    watcher.batch_execute("CREATE TABLE item (id integer PRIMARY KEY, qty integer)").await.unwrap();
    let count = || async { watcher.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get::<_, i64>(0) };

    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=idle");
    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls).await.unwrap();
    let ended = tokio::spawn(conn);
    client.batch_execute("SET idle_in_transaction_session_timeout = '1s'").await.unwrap();
    assert_eq!(
        simple_rows(client.simple_query("SHOW idle_in_transaction_session_timeout").await.unwrap()),
        vec![vec![Some("1s".into())]]
    );
    // Idle outside a block: nothing happens.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    client.batch_execute("INSERT INTO item VALUES (1, 10)").await.unwrap();
    // Busy inside a block, each pause shorter than the limit: the block goes on.
    client.batch_execute("BEGIN").await.unwrap();
    for i in 2..5i64 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.execute("INSERT INTO item VALUES ($1, 0)", &[&i]).await.unwrap();
    }
    // Then idle inside it: closed, and nothing of the block is kept.
    let closed = tokio::time::timeout(Duration::from_secs(10), ended).await.expect("the idle block is closed").unwrap();
    let err = closed.expect_err("closed with an error");
    let db = err.as_db_error().expect("the server said why");
    assert_eq!((db.code().code(), db.message()), ("25P03", "terminating connection due to idle-in-transaction timeout"));
    assert!(client.simple_query("COMMIT").await.is_err() && client.is_closed());
    assert_eq!(count().await, 1, "the block was rolled back");
    // Another session writes the rows the closed block held (no lock is left behind).
    watcher.batch_execute("INSERT INTO item VALUES (2, 20), (3, 30)").await.unwrap();
    assert_eq!(count().await, 3);

    // idle_session_timeout, set by a session for itself, and the server's default.
    let client = connect(port, "idle").await;
    client.batch_execute("SET idle_session_timeout = '1s'").await.unwrap();
    assert_eq!(simple_rows(client.simple_query("SHOW idle_session_timeout").await.unwrap()), vec![vec![Some("1s".into())]]);
    client.batch_execute("SET idle_session_timeout = 0").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!client.is_closed());
    let bad = client.batch_execute("SET idle_session_timeout = 'soon'").await.unwrap_err();
    assert_eq!(db_code(&bad), "22023");
    let opts = ServeOptions {
        timeouts: heavenbase_pgwire::Timeouts { idle_session: Some(Duration::from_secs(1)), ..Default::default() },
        ..Default::default()
    };
    let port = start_with(vec![ws], opts).await;
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=idle");
    let (idle, conn) = tokio_postgres::connect(&conninfo, NoTls).await.unwrap();
    let ended = tokio::spawn(conn);
    assert_eq!(idle.query_one("SELECT count(*) FROM item", &[]).await.unwrap().get::<_, i64>(0), 3);
    let closed = tokio::time::timeout(Duration::from_secs(10), ended).await.expect("the idle session is closed").unwrap();
    let err = closed.expect_err("closed with an error");
    assert_eq!(db_code(&err), "57P05", "{err:?}");
    assert!(idle.is_closed());
}

/// `--max-query-memory` / `--max-memory`: a statement whose operators can
/// spill (a sort) finishes within its limit, writing to the workspace's
/// `spill` folder; one that cannot (an aggregate gathering millions of values)
/// fails with 53200, alone: the session and others go on, and the memory it
/// held is given back (the same statement, failed many times over, does not
/// use up the server's pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_over_their_memory_limit_spill_or_fail_with_53200() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let limits = heavenbase::memory::MemoryLimits::new(Some(40 << 20), Some(16 << 20));
    let port = start_with(vec![ws.clone()], ServeOptions { memory: limits, ..Default::default() }).await;
    let client = connect(port, "sqlite").await;
    let other = connect(port, "sqlite").await;

    let hoard = "SELECT cardinality(array_agg(value)) FROM generate_series(1, 8000000)";
    for round in 0..6 {
        let extended = round % 2 == 1;
        let run = async {
            if extended { client.query(hoard, &[]).await.map(|_| ()) } else { client.simple_query(hoard).await.map(|_| ()) }
        };
        let err = run.await.expect_err("over the statement's limit");
        assert_eq!(db_code(&err), "53200", "{err:?}");
        assert!(err.as_db_error().unwrap().message().contains("16 MiB"), "{err:?}");
        let n: i64 = other.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
        assert_eq!(n, 4);
    }
    // Within the limit the same kind of statement is answered.
    let rows =
        simple_rows(client.simple_query("SELECT cardinality(array_agg(value)) FROM generate_series(1, 100000)").await.unwrap());
    assert_eq!(rows, vec![vec![Some("100000".into())]]);

    // A sort of 3M rows (about 24 MB of keys) spills and gives the right answer.
    let sorted = "SELECT max(r), min(k), max(k) FROM \
                  (SELECT row_number() OVER (ORDER BY (value * 7919) % 3000017) AS r, (value * 7919) % 3000017 AS k \
                   FROM generate_series(1, 3000000)) t";
    let rows = simple_rows(client.simple_query(sorted).await.unwrap());
    assert_eq!(rows, vec![vec![Some("3000000".into()), Some("1".into()), Some("3000016".into())]]);
    // It did spill: the plan's metrics say so.
    let analyzed = simple_rows(client.simple_query(&format!("EXPLAIN ANALYZE {sorted}")).await.unwrap());
    let text: String = analyzed.iter().flatten().flatten().cloned().collect::<Vec<_>>().join("\n");
    let spills: Vec<u64> = text
        .split("spill_count=")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect();
    assert!(spills.iter().any(|n| *n > 0), "the sort spilled: {text}");
    assert!(ws.folder().join("spill").is_dir(), "spills go to the workspace's folder");
}

/// CREATE TABLE … AS answers `SELECT n` (psql prints it, tokio-postgres
/// counts it); DEFAULT now() fills rows inserted over the wire; CREATE INDEX
/// and DROP INDEX by name; UPDATE … FROM and DELETE … USING with bound
/// parameters, counted as Postgres counts them; all seen by a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_as_defaults_indexes_and_joined_writes_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("wctas", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws).await;
    let client = connect(port, "wctas").await;
    client
        .batch_execute(
            "CREATE TABLE cust (id integer PRIMARY KEY, tier text, since timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO cust (id, tier) VALUES (1, 'gold'), (2, 'basic'), (3, 'gold'); \
             CREATE TABLE orders (id integer PRIMARY KEY, cust integer, total float)",
        )
        .await
        .unwrap();
    let n = client.execute("INSERT INTO orders VALUES (10, 1, 100), (11, 2, 100), (12, 3, 40)", &[]).await.unwrap();
    assert_eq!(n, 3);
    let n = client.execute("CREATE TABLE gold AS SELECT id, tier FROM cust WHERE tier = 'gold'", &[]).await.unwrap();
    assert_eq!(n, 2, "CREATE TABLE … AS is counted from its SELECT n tag");
    // An INSERT's SELECT whose items share a name, as Postgres takes it (both protocols).
    client.batch_execute("CREATE TABLE pairs (a text, b text)").await.unwrap();
    client.batch_execute("INSERT INTO pairs SELECT CAST(id AS text), CAST(id AS text) FROM cust WHERE id < 3").await.unwrap();
    let n = client.execute("INSERT INTO pairs SELECT CAST(id AS text), CAST(id AS text) FROM cust WHERE id = $1", &[&3i64]);
    assert_eq!(n.await.unwrap(), 1);
    let pairs: Vec<(String, String)> =
        client.query("SELECT a, b FROM pairs ORDER BY a", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(pairs, [("1".into(), "1".into()), ("2".into(), "2".into()), ("3".into(), "3".into())]);
    let n = client
        .execute("UPDATE orders SET total = total / 2 FROM gold WHERE orders.cust = gold.id AND gold.id > $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = client
        .execute("DELETE FROM orders USING cust WHERE orders.cust = cust.id AND cust.tier = $1", &[&"basic"])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let other = connect(port, "wctas").await;
    let got: Vec<(i64, f64)> = other
        .query("SELECT id, total FROM orders ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, [(10, 100.0), (12, 20.0)]);
    let stamped: i64 = other.query_one("SELECT count(*) FROM cust WHERE since IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(stamped, 3);
    let err = other.execute("DROP INDEX nosuch", &[]).await.unwrap_err();
    assert_eq!(db_code(&err), "42704", "{err}");
    // pg_indexes lists them as Postgres would.
    client.batch_execute("CREATE INDEX orders_cust ON orders (cust)").await.unwrap();
    let listed: Vec<(String, String)> = other
        .query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname", &[&"orders"])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = [
        ("orders_cust", "CREATE INDEX orders_cust ON public.orders USING btree (cust)"),
        ("orders_name_idx", "CREATE INDEX orders_name_idx ON public.orders USING btree (name)"),
        ("orders_pkey", "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)"),
    ];
    assert_eq!(listed, want.map(|(a, b)| (a.to_string(), b.to_string())));
    // Signs in a row survive the wire's rewrites (sqlparser prints `- -1` as `--1`, a comment).
    let signs: i64 = other.query_one("SELECT - - 1 + - + 2", &[]).await.unwrap().get(0);
    assert_eq!(signs, -1);
    let simple = other.simple_query("SELECT - - 3 AS v").await.unwrap();
    let v = simple.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
        _ => None,
    });
    assert_eq!(v.as_deref(), Some("3"));
    if has_psql() {
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=wctas");
        let script = "CREATE TABLE copy2 AS SELECT * FROM orders;\n\
                      CREATE INDEX copy2_total ON copy2 (total);\n\
                      DROP INDEX copy2_total;\n\
                      SELECT count(*) FROM copy2;\n";
        let (ok, out, stderr) = psql_run(&conninfo, &["-f", "-"], Some(script)).await;
        let lines: Vec<&str> = out.lines().collect();
        assert!(ok, "{out}{stderr}");
        assert_eq!(lines, ["SELECT 2", "CREATE INDEX", "DROP INDEX", "2"], "{stderr}");
    }
}

/// psql's `\d` lists a table's indexes as Postgres does (primary key, UNIQUE
/// constraint, created index), from pg_class, pg_index, pg_constraint and
/// `pg_get_indexdef`; the catalog rows agree with one another and with
/// pg_indexes; `\di` lists the indexes with their tables. The same DDL in the
/// real Postgres of `HEAVENBASE_TEST_PG` prints the same Indexes section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_indexes_as_postgres_does() {
    let h = TestHome::new();
    let ws = h.open("wdix", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws).await;
    let client = connect(port, "wdix").await;
    let ddl = "CREATE TABLE acct (id integer PRIMARY KEY, email text UNIQUE, tier text, since date); \
               CREATE INDEX acct_tier ON acct (tier); \
               CREATE UNIQUE INDEX acct_tier_since ON acct (tier, since)";
    client.batch_execute(ddl).await.unwrap();

    // The catalog tables agree: pg_index joins pg_class both ways, and
    // pg_get_indexdef gives pg_indexes' definition.
    let rows = client
        .query(
            "SELECT c2.relname, c2.relkind, i.indisprimary, i.indisunique, i.indkey, pg_get_indexdef(i.indexrelid) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indrelid = c.oid \
             JOIN pg_catalog.pg_class c2 ON c2.oid = i.indexrelid WHERE c.relname = 'acct' ORDER BY c2.relname",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, bool, bool, String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect();
    let listed: Vec<(String, String)> = client
        .query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'acct' ORDER BY indexname", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got.iter().map(|g| (g.0.clone(), g.5.clone())).collect::<Vec<_>>(), listed);
    let shape: Vec<(&str, &str, bool, bool, &str)> =
        got.iter().map(|g| (g.0.as_str(), g.1.as_str(), g.2, g.3, g.4.as_str())).collect();
    assert_eq!(
        shape,
        [
            ("acct_email_key", "i", false, true, "2"),
            ("acct_name_idx", "i", false, false, "-2"),
            ("acct_pkey", "i", true, true, "1"),
            ("acct_tier", "i", false, false, "3"),
            ("acct_tier_since", "i", false, true, "3 4"),
        ]
    );
    let has_index: bool =
        client.query_one("SELECT relhasindex FROM pg_catalog.pg_class WHERE relname = 'acct'", &[]).await.unwrap().get(0);
    assert!(has_index);
    // Constraints own the primary key's and UNIQUE column's indexes, not CREATE INDEX's.
    let constraints: Vec<(String, String, String, String)> = client
        .query(
            "SELECT con.conname, con.contype, pg_get_constraintdef(con.oid), c2.relname \
             FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
             JOIN pg_catalog.pg_class c2 ON c2.oid = con.conindid WHERE c.relname = 'acct' ORDER BY con.conname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let want = [("acct_email_key", "u", "UNIQUE (email)", "acct_email_key"), ("acct_pkey", "p", "PRIMARY KEY (id)", "acct_pkey")];
    assert_eq!(constraints, want.map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())));
    let column: Option<String> = client
        .query_one(
            "SELECT pg_get_indexdef(i.indexrelid, 2, true) FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c2 ON c2.oid = i.indexrelid WHERE c2.relname = 'acct_tier_since'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(column.as_deref(), Some("since"));
    // A dropped index leaves every listing.
    client.batch_execute("DROP INDEX acct_tier").await.unwrap();
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_class c2 JOIN pg_catalog.pg_index i ON c2.oid = i.indexrelid \
             WHERE c2.relname = 'acct_tier'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    client.batch_execute("CREATE INDEX acct_tier ON acct (tier)").await.unwrap();

    if !has_psql() {
        return;
    }
    let indexes_section = |out: &str| -> Vec<String> {
        out.lines()
            .skip_while(|l| *l != "Indexes:")
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=wdix");
    let (ok, out, stderr) = psql_run(&conninfo, &["-P", "tuples_only=off", "-c", "\\d acct"], None).await;
    assert!(ok, "{stderr}");
    let ours = indexes_section(&out);
    assert_eq!(
        ours,
        [
            "\"acct_pkey\" PRIMARY KEY, btree (id)",
            "\"acct_email_key\" UNIQUE CONSTRAINT, btree (email)",
            "\"acct_name_idx\" btree (name)",
            "\"acct_tier\" btree (tier)",
            "\"acct_tier_since\" UNIQUE, btree (tier, since)",
        ],
        "{out}"
    );
    // `\d index`: its columns (pg_attribute rows of the index) and what it is.
    let (ok, out, stderr) = psql_run(&conninfo, &["-P", "tuples_only=off", "-c", "\\d acct_tier_since"], None).await;
    assert!(ok, "{stderr}");
    let index_lines = |out: &str| -> Vec<String> { out.lines().skip(1).map(str::to_string).collect() };
    let ours_index = index_lines(&out);
    assert_eq!(
        ours_index,
        ["Column|Type|Key?|Definition", "tier|text|yes|tier", "since|date|yes|since", "unique, btree, for table \"public.acct\""],
        "{out}"
    );
    let (ok, out, stderr) = psql_run(&conninfo, &["-c", "\\di"], None).await;
    assert!(ok, "{stderr}");
    let mut listed: Vec<(String, String)> = out
        .lines()
        .map(|l| l.split('|').collect::<Vec<_>>())
        .filter(|cols| cols.len() == 5 && cols[4] == "acct")
        .map(|cols| (cols[1].to_string(), cols[2].to_string()))
        .collect();
    listed.sort();
    assert_eq!(listed.len(), 5, "{out}");
    assert!(listed.iter().all(|(_, kind)| kind == "index"), "{out}");

    // The same DDL in a real Postgres prints the same section (less the
    // workspace's own index on `name`, a column Postgres tables lack).
    let Some(url) = crate::common::pg_url() else { return };
    let schema = format!("hb_dix_{}", std::process::id());
    let setup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}; {ddl};");
    let (ok, _, stderr) = psql_run(&url, &["-c", &setup], None).await;
    assert!(ok, "{stderr}");
    let (ok, out, stderr) =
        psql_run(&url, &["-P", "tuples_only=off", "-c", &format!("SET search_path TO {schema}"), "-c", "\\d acct"], None).await;
    assert!(ok, "{stderr}");
    let theirs = indexes_section(&out);
    let ours: Vec<String> = ours.into_iter().filter(|l| !l.contains("acct_name_idx")).collect();
    assert_eq!(ours, theirs, "{out}");
    let (ok, out, stderr) = psql_run(
        &url,
        &["-P", "tuples_only=off", "-c", &format!("SET search_path TO {schema}"), "-c", "\\d acct_tier_since"],
        None,
    )
    .await;
    assert!(ok, "{stderr}");
    let theirs_index: Vec<String> = index_lines(&out.replace(&format!("\"{schema}."), "\"public.")).into_iter().skip(1).collect();
    let _ = psql_run(&url, &["-c", &format!("DROP SCHEMA {schema} CASCADE")], None).await;
    assert_eq!(ours_index, theirs_index, "{out}");
}

/// A correlated scalar subquery in the select list answers over the wire what
/// it answers through `ws.sql`: the count per row, not NULL (the catalog
/// layer's rewrite for tools' queries used to turn it into NULL); one
/// DataFusion cannot plan is refused, never answered with NULLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlated_subqueries_in_the_select_list_answer_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("wsubq", heavenbase::Construction::preset("embedded")).await;
    ws.sql("CREATE TABLE cust (id integer PRIMARY KEY, tier text)").await.unwrap();
    ws.sql("CREATE TABLE ord (id integer PRIMARY KEY, cust integer, total float)").await.unwrap();
    ws.sql("INSERT INTO cust VALUES (1, 'gold'), (2, 'basic'), (3, 'new')").await.unwrap();
    ws.sql("INSERT INTO ord VALUES (10, 1, 5), (11, 1, 7), (12, 2, 1)").await.unwrap();
    let port = start(ws.clone()).await;
    let client = connect(port, "wsubq").await;
    let sql = "SELECT c.id, (SELECT count(*) FROM ord o WHERE o.cust = c.id) AS n, \
               (SELECT sum(o.total) FROM ord o WHERE o.cust = c.id), \
               (SELECT o.id FROM ord o WHERE o.cust = c.id AND o.total < 6) AS small FROM cust c ORDER BY c.id";
    let want: Vec<(i64, i64, Option<f64>, Option<i64>)> =
        vec![(1, 2, Some(12.0), Some(10)), (2, 1, Some(1.0), Some(12)), (3, 0, None, None)];
    for rows in [client.query(sql, &[]).await.unwrap(), connect(port, "wsubq").await.query(sql, &[]).await.unwrap()] {
        let got: Vec<(i64, i64, Option<f64>, Option<i64>)> =
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
        assert_eq!(got, want);
    }
    let simple = simple_rows(
        client
            .simple_query("SELECT c.tier, (SELECT count(*) FROM ord o WHERE o.cust = c.id) FROM cust c ORDER BY c.id")
            .await
            .unwrap(),
    );
    let want = [["gold", "2"], ["basic", "1"], ["new", "0"]];
    assert_eq!(simple, want.map(|r| r.map(|v| Some(v.to_string())).to_vec()).to_vec());
    // EXISTS in the select list (DataFusion plans it only as a filter), named `exists`.
    let exists = client
        .prepare("SELECT c.id, EXISTS (SELECT 1 FROM ord o WHERE o.cust = c.id), NOT EXISTS (SELECT 1 FROM ord o WHERE o.cust = c.id AND o.total > 6) AS small FROM cust c ORDER BY c.id")
        .await
        .unwrap();
    assert_eq!(exists.columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["id", "exists", "small"]);
    let got: Vec<(i64, bool, bool)> =
        client.query(&exists, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got, [(1, true, false), (2, true, true), (3, false, true)]);
    let api = ws.sql("SELECT c.id, EXISTS (SELECT 1 FROM ord o WHERE o.cust = c.id) FROM cust c ORDER BY c.id").await.unwrap();
    assert_eq!(api[0].schema().field(1).name(), "exists");
    assert_eq!(crate::common::cells(&api), crate::common::rows(&[&["1", "true"], &["2", "true"], &["3", "false"]]));
    // The same through the Rust API.
    let api =
        ws.sql("SELECT c.id, (SELECT count(*) FROM ord o WHERE o.cust = c.id) AS n FROM cust c ORDER BY c.id").await.unwrap();
    let counts = datafusion::arrow::compute::cast(api[0].column(1), &datafusion::arrow::datatypes::DataType::Int64).unwrap();
    let counts: Vec<i64> = counts.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap().values().to_vec();
    assert_eq!(counts, [2, 1, 0]);
}

/// A `uuid` key with `DEFAULT gen_random_uuid()`, as modern schemas declare
/// it: `INSERT … RETURNING id` gives the generated UUID (both protocols),
/// a bound `$1` or an upper-case `'…'::uuid` finds the row, and text that
/// is no UUID is 22P02 with the session going on. The column is announced as
/// `uuid` (OID 2950) in results and in pg_attribute, so a driver gives its
/// UUID type (here tokio-postgres' `uuid::Uuid`, read in binary); a UUID
/// bound as a `uuid` parameter (binary, 16 bytes) writes and finds rows,
/// including on the key-lookup path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_keys_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("wuuid", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let client = connect(port, "wuuid").await;
    client
        .batch_execute("CREATE TABLE session (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), who text NOT NULL)")
        .await
        .unwrap();
    let row = client.query_one("INSERT INTO session (who) VALUES ($1) RETURNING id", &[&"ada"]).await.unwrap();
    assert_eq!(row.columns()[0].type_(), &tokio_postgres::types::Type::UUID);
    let made: uuid::Uuid = row.get(0);
    let made = made.hyphenated().to_string();
    assert!(heavenbase::catalog::types::is_canonical_uuid(&made), "{made}");
    let simple = simple_rows(client.simple_query("INSERT INTO session (who) VALUES ('bob') RETURNING id").await.unwrap());
    let bob = simple[0][0].clone().unwrap();
    assert!(heavenbase::catalog::types::is_canonical_uuid(&bob) && bob != made, "{bob} {made}");
    let who: String = client.query_one("SELECT who FROM session WHERE id = $1", &[&made]).await.unwrap().get(0);
    assert_eq!(who, "ada");
    let upper = format!("SELECT who FROM session WHERE id = '{}'::uuid", bob.to_uppercase());
    assert_eq!(simple_rows(client.simple_query(&upper).await.unwrap()), vec![vec![Some("bob".into())]]);
    let err = client.execute("INSERT INTO session (id, who) VALUES ($1, 'eve')", &[&"12345"]).await.unwrap_err();
    assert_eq!(db_code(&err), "22P02", "{err:?}");
    let n: i64 = client.query_one("SELECT count(*) FROM session", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);

    // Typed both ways: a Uuid bound as uuid (binary) and read back as one.
    let typed = [tokio_postgres::types::Type::UUID, tokio_postgres::types::Type::TEXT];
    let insert = client.prepare_typed("INSERT INTO session (id, who) VALUES ($1, $2)", &typed).await.unwrap();
    let carol = uuid::Uuid::parse_str("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
    assert_eq!(client.execute(&insert, &[&carol, &"carol"]).await.unwrap(), 1);
    let lookup = client.prepare_typed("SELECT id, who FROM session WHERE id = $1", &typed[..1]).await.unwrap();
    let found = client.query(&lookup, &[&carol]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].get::<_, uuid::Uuid>(0), carol);
    assert_eq!(found[0].get::<_, String>(1), "carol");
    // Uncast text compared with the uuid column is read as a uuid (as Postgres
    // types the literal by the column): upper case, in a list, bound as text.
    let upper = carol.hyphenated().to_string().to_uppercase();
    let uncast = format!("SELECT who FROM session WHERE id = '{upper}'");
    assert_eq!(simple_rows(client.simple_query(&uncast).await.unwrap()), vec![vec![Some("carol".into())]]);
    let listed = format!("SELECT who FROM session WHERE id IN ('{{{}}}', '{}') ORDER BY who", carol.simple(), bob.to_uppercase());
    assert_eq!(
        simple_rows(client.simple_query(&listed).await.unwrap()),
        vec![vec![Some("bob".into())], vec![Some("carol".into())]]
    );
    let who: String = client.query_one("SELECT who FROM session WHERE id = $1", &[&upper]).await.unwrap().get(0);
    assert_eq!(who, "carol");
    let who: String = client.query_one(uncast.as_str(), &[]).await.unwrap().get(0);
    assert_eq!(who, "carol");
    let err = client.simple_query("SELECT who FROM session WHERE id = 'not-a-uuid'").await.unwrap_err();
    assert_eq!(db_code(&err), "22P02", "{err:?}");
    // Any form Postgres reads, cast: a hyphen after any group of four.
    let stored: String = client
        .query_one("SELECT who FROM session WHERE id = $1::uuid", &[&"A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "carol");
    // A uuid's binary form is 16 bytes; 15 is refused, and the session goes on.
    let short = client.query_raw(&lookup, [Raw16(vec![0u8; 15])]).await;
    let err = match short {
        Ok(stream) => futures::StreamExt::collect::<Vec<_>>(stream).await.into_iter().find_map(Result::err).expect("an error"),
        Err(e) => e,
    };
    assert_eq!(db_code(&err), "22P02", "{err:?}");
    // The catalog says uuid, as information_schema does.
    let attribute: String = client
        .query_one(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid \
             WHERE c.relname = 'session' AND a.attname = 'id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attribute, "uuid");
    let n: i64 = client.query_one("SELECT count(*) FROM session", &[]).await.unwrap().get(0);
    assert_eq!(n, 3);

    // Computed uuids are uuids too: a cast (folded to a constant or not), a
    // new one per row, through an alias and a derived table, and a cast of
    // the text column of a join.
    let computed = client
        .query_one(
            "SELECT 'A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11'::uuid AS c, gen_random_uuid() AS g, \
             CAST(lower(who) AS text) AS w, s.u FROM session, (SELECT CAST(max(id) AS uuid) AS u FROM session) s \
             WHERE who = 'carol'",
            &[],
        )
        .await
        .unwrap();
    let types: Vec<_> = computed.columns().iter().map(|c| c.type_().clone()).collect();
    use tokio_postgres::types::Type;
    assert_eq!(types, vec![Type::UUID, Type::UUID, Type::TEXT, Type::UUID]);
    assert_eq!(computed.get::<_, uuid::Uuid>(0), carol);
    assert_eq!(computed.get::<_, uuid::Uuid>(1).get_version_num(), 4);
    assert_eq!(computed.get::<_, String>(2), "carol");
    let greatest = [carol.hyphenated().to_string(), made.clone(), bob.clone()].into_iter().max().unwrap();
    assert_eq!(computed.get::<_, uuid::Uuid>(3).hyphenated().to_string(), greatest);
    // In the simple protocol, the canonical text; a column of a view too.
    client.batch_execute("CREATE VIEW session_keys AS SELECT who, id::uuid AS key FROM session").await.unwrap();
    let viewed = client.query_one("SELECT key FROM session_keys WHERE who = 'carol'", &[]).await.unwrap();
    assert_eq!(viewed.columns()[0].type_(), &Type::UUID);
    assert_eq!(viewed.get::<_, uuid::Uuid>(0), carol);
    let text = simple_rows(client.simple_query("SELECT 'A0EEBC999C0B4EF8BB6D6BB9BD380A11'::uuid").await.unwrap());
    assert_eq!(text, vec![vec![Some(carol.hyphenated().to_string())]]);
    // A uuid computed into a write is stored as its canonical text.
    client.batch_execute("INSERT INTO session (id, who) SELECT gen_random_uuid(), 'dan'").await.unwrap();
    let dan: uuid::Uuid = client.query_one("SELECT id FROM session WHERE who = 'dan'", &[]).await.unwrap().get(0);
    assert_eq!(dan.get_version_num(), 4);
    client.batch_execute("DROP VIEW session_keys").await.unwrap();
}

/// Bytes bound as they are, whatever the parameter's type (to send a
/// malformed binary value).
#[derive(Debug)]
struct Raw16(Vec<u8>);

impl tokio_postgres::types::ToSql for Raw16 {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(tokio_postgres::types::IsNull::No)
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// REPEATABLE READ and SERIALIZABLE blocks write: their writes are held to
/// COMMIT like any block's and applied only if nothing in the workspace
/// changed since the block's first statement. A change seen by a later
/// statement fails it with 40001; of two such blocks that read what the
/// other writes (write skew), the second COMMIT gets 40001 and writes
/// nothing; identity values a block draws do not fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatable_read_blocks_write_and_fail_on_conflict() {
    let h = TestHome::new();
    let ws = h.open("wrr", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let a = connect(port, "wrr").await;
    let b = connect(port, "wrr").await;
    a.batch_execute(
        "CREATE TABLE acct (id integer PRIMARY KEY, bal integer NOT NULL); \
         INSERT INTO acct VALUES (1, 100), (2, 100); \
         CREATE TABLE entry (id serial PRIMARY KEY, note text)",
    )
    .await
    .unwrap();
    async fn balances(c: &tokio_postgres::Client) -> Vec<(i64, i64)> {
        let rows = c.query("SELECT id, bal FROM acct ORDER BY id", &[]).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }
    // A block that writes and commits: it reads its own write; others see it after COMMIT.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let bal: i64 = a.query_one("SELECT bal FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(bal, 100);
    assert_eq!(a.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", &[]).await.unwrap(), 1);
    let bal: i64 = a.query_one("SELECT bal FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(bal, 90);
    assert_eq!(balances(&b).await, [(1, 100), (2, 100)]);
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(balances(&b).await, [(1, 90), (2, 100)]);

    // Another session's write while the block runs fails its next statement.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let sum: i64 = a.query_one("SELECT sum(bal) FROM acct", &[]).await.unwrap().get(0);
    assert_eq!(sum, 190);
    b.execute("UPDATE acct SET bal = bal + 1 WHERE id = 2", &[]).await.unwrap();
    let err = a.execute("UPDATE acct SET bal = bal - 5 WHERE id = 1", &[]).await.unwrap_err();
    assert_eq!(db_code(&err), "40001", "{err:?}");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(balances(&a).await, [(1, 90), (2, 101)]);

    // Write skew: each block reads both rows and writes the one the other
    // read. The first COMMIT wins; the second gets 40001 and writes nothing.
    a.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE").await.unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE").await.unwrap();
    let sa: i64 = a.query_one("SELECT sum(bal) FROM acct", &[]).await.unwrap().get(0);
    let sb: i64 = b.query_one("SELECT sum(bal) FROM acct", &[]).await.unwrap().get(0);
    assert_eq!((sa, sb), (191, 191));
    a.execute("UPDATE acct SET bal = bal - 100 WHERE id = 1", &[]).await.unwrap();
    b.execute("UPDATE acct SET bal = bal - 100 WHERE id = 2", &[]).await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let err = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(db_code(&err), "40001", "{err:?}");
    assert_eq!(balances(&b).await, [(1, -10), (2, 101)], "only the first block's write");
    // The session that got 40001 at COMMIT is idle and goes on.
    let one: i64 = b.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);

    // Identity values drawn inside the block do not fail it.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let first: i64 = a.query_one("INSERT INTO entry (note) VALUES ('one') RETURNING id", &[]).await.unwrap().get(0);
    let second: i64 = a.query_one("INSERT INTO entry (note) VALUES ('two') RETURNING id", &[]).await.unwrap().get(0);
    assert_eq!((first, second), (1, 2));
    a.batch_execute("COMMIT").await.unwrap();
    let n: i64 = b.query_one("SELECT count(*) FROM entry", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
    // READ ONLY still refuses writes.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.unwrap();
    let err = a.execute("UPDATE acct SET bal = 0", &[]).await.unwrap_err();
    assert_eq!(db_code(&err), "25006", "{err:?}");
    a.batch_execute("ROLLBACK").await.unwrap();
}
