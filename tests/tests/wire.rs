//! The Postgres-wire endpoint, driven by real clients over a real socket.

use std::time::Duration;

use heavenbase::Workspace;
use heavenbase_pgwire::{ServeOptions, serve};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::common::TestHome;
use crate::sql::load;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start a server for `ws` on a free loopback port; returns the port.
async fn start(ws: Workspace) -> u16 {
    let port = free_port();
    let opts = ServeOptions { port, ..ServeOptions::default() };
    tokio::spawn(async move { serve(ws, &opts).await.expect("server runs") });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not start on port {port}");
}

async fn connect(port: u16, db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=postgres dbname={db}"), NoTls)
        .await
        .expect("connect");
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
    assert_eq!(rows[0], vec![Some("alpha".into()), Some("10.0".into())]);
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
    let n = client.execute("UPDATE product SET qty = $1 WHERE name = $2 AND price < $3", &[&"8", &"omega", &2.0f64]).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(ws.get("product", &omega).await.unwrap().unwrap()["qty"], serde_json::json!(8));
    let n = client.execute("DELETE FROM product WHERE name = $1", &[&"nobody"]).await.unwrap();
    assert_eq!(n, 0);
    let msgs = client.simple_query("DELETE FROM product WHERE object_id IN (SELECT product_id FROM review WHERE stars = 5)").await.unwrap();
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
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "sqlite", "-X", "-A", "-t", "-c", &cmd])
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
    assert_eq!(out.trim(), "3.0");
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
