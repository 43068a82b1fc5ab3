//! The Postgres-wire endpoint beside the Postgres server on this machine, over
//! the same rows, in the same run:
//! - wire-lookup: a prepared `SELECT * FROM item WHERE object_id = $1` from one
//!   tokio-postgres client, warm (p50, p99). Goal: p50 ≤ 1 ms.
//! - wire-pgbench: pgbench, 16 clients, extended protocol, a custom script of
//!   point lookups by object_id (transactions/s). Goal: ≥ 0.5× Postgres.
//! - wire-stream: `SELECT * FROM item` (1M rows) streamed to a tokio-postgres
//!   client (rows/s). Goal: ≥ 0.8× Postgres.
//!
//! The workspace is `embedded` (a SQLite file); rows carry explicit object_ids
//! `0`…`n-1` so pgbench can pick them with `random()`. Postgres holds the same
//! rows in a table with object_id as primary key (`HEAVENBASE_TEST_PG`).

use std::time::{Duration, Instant};

use futures::{StreamExt, pin_mut};
use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Row, Workspace};
use serde_json::json;

use crate::home;

pub(crate) const ROWS: usize = 1_000_000;
const LOOKUPS: usize = 5_000;
const PGBENCH_SECONDS: &str = "10";

pub(crate) fn pg_url() -> String {
    std::env::var("HEAVENBASE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub(crate) async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

fn row(i: usize) -> Row {
    json!({"object_id": i.to_string(), "name": format!("item {i}"), "title": format!("Title number {i}"),
           "price": (i % 1000) as f64 * 0.5, "qty": (i % 97) as i64})
    .as_object()
    .unwrap()
    .clone()
}

/// Both sides loaded with the same rows; the server runs until the process ends.
pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    pub(crate) wire: String,
    pub(crate) postgres: String,
    /// The served workspace, for other doors over the same rows.
    pub(crate) ws: Workspace,
}

pub(crate) async fn setup(rows: usize) -> Setup {
    let (dir, home) = home();
    let ws = Workspace::open_in(&home, "bench", Construction::preset("embedded")).await.unwrap();
    ws.register(
        EntityDef::new("item")
            .field(FieldDef::new("title", T::short_text()))
            .field(FieldDef::new("price", T::Float))
            .field(FieldDef::new("qty", T::Integer)),
        false,
    )
    .await
    .unwrap();
    let t = Instant::now();
    for start in (0..rows).step_by(50_000) {
        ws.upsert_many("item", (start..(start + 50_000).min(rows)).map(row).collect()).await.unwrap();
    }
    println!("  loaded {rows} rows into the workspace in {:.1} s", t.elapsed().as_secs_f64());

    let pg = connect(&pg_url()).await;
    pg.batch_execute(
        "DROP SCHEMA IF EXISTS hb_wire_bench CASCADE; CREATE SCHEMA hb_wire_bench;
         CREATE TABLE hb_wire_bench.item (object_id text PRIMARY KEY, name text, title text, price float8, qty int8);",
    )
    .await
    .unwrap();
    copy_lines(&pg, "COPY hb_wire_bench.item FROM STDIN", rows, |i| {
        format!("{i}\titem {i}\tTitle number {i}\t{}\t{}\n", (i % 1000) as f64 * 0.5, i % 97)
    })
    .await;
    pg.batch_execute("ANALYZE hb_wire_bench.item").await.unwrap();

    let port = serve_on_own_runtime(ws.clone());
    Setup {
        ws,
        _dir: dir,
        wire: format!("host=127.0.0.1 port={port} user=postgres dbname=bench"),
        postgres: format!("{} options=-csearch_path=hb_wire_bench", pg_conninfo()),
    }
}

/// Serve `ws` on a free loopback port until the process ends; returns the port.
/// The server runs on a runtime of its own, as `hb serve` runs in a process of
/// its own beside Postgres': the clients' tasks do not share its threads.
pub(crate) fn serve_on_own_runtime(ws: Workspace) -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            heavenbase_pgwire::serve_on(listener, vec![ws], &Default::default(), std::future::pending()).await.unwrap();
        });
    });
    port_rx.recv().unwrap()
}

/// Load Postgres with `COPY … FROM STDIN`, text lines `line(0)`…`line(rows - 1)`
/// sent in chunks of about 1 MiB.
pub(crate) async fn copy_lines(pg: &tokio_postgres::Client, copy: &str, rows: usize, line: impl Fn(usize) -> String) {
    let sink = pg.copy_in(copy).await.unwrap();
    pin_mut!(sink);
    let mut buf = String::new();
    for i in 0..rows {
        buf.push_str(&line(i));
        if buf.len() > 1 << 20 {
            futures::SinkExt::send(&mut sink, bytes::Bytes::from(std::mem::take(&mut buf))).await.unwrap();
        }
    }
    futures::SinkExt::send(&mut sink, bytes::Bytes::from(buf)).await.unwrap();
    sink.finish().await.unwrap();
}

/// `HEAVENBASE_TEST_PG` as a key=value conninfo (pgbench and the options below take it).
pub(crate) fn pg_conninfo() -> String {
    let url = pg_url();
    let rest = url.trim_start_matches("postgres://").trim_start_matches("postgresql://");
    let (auth, hostdb) = rest.split_once('@').unwrap_or(("postgres", rest));
    let (hostport, db) = hostdb.split_once('/').unwrap_or((hostdb, "postgres"));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    let user = auth.split(':').next().unwrap_or("postgres");
    format!("host={host} port={port} user={user} dbname={db}")
}

async fn lookup_latencies(conninfo: &str, rows: usize) -> Vec<Duration> {
    let client = connect(conninfo).await;
    let stmt = client.prepare("SELECT * FROM item WHERE object_id = $1").await.unwrap();
    let mut latencies = Vec::with_capacity(LOOKUPS);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for i in 0..LOOKUPS + 500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = (x % rows as u64).to_string();
        let t = Instant::now();
        let got = client.query(&stmt, &[&id]).await.unwrap();
        let took = t.elapsed();
        assert_eq!(got.len(), 1, "id {id}");
        if i >= 500 {
            latencies.push(took);
        }
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// All three figures on one loaded setup.
pub async fn run() {
    println!("wire: the Postgres-wire endpoint beside Postgres, {ROWS} rows on each side");
    let s = setup(ROWS).await;
    lookup(&s).await;
    pgbench_lookups(&s).await;
    stream(&s).await;
}

/// The streaming figure alone (`wire-stream`).
pub async fn run_stream() {
    println!("wire-stream: the Postgres-wire endpoint beside Postgres, {ROWS} rows on each side");
    let s = setup(ROWS).await;
    stream(&s).await;
}

async fn lookup(s: &Setup) {
    println!("wire-lookup: prepared SELECT * … WHERE object_id = $1, {LOOKUPS} warm lookups");
    let ours = lookup_latencies(&s.wire, ROWS).await;
    let theirs = lookup_latencies(&s.postgres, ROWS).await;
    let (p50, p99) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
    let (q50, q99) = (percentile(&theirs, 0.5), percentile(&theirs, 0.99));
    println!("  HeavenBase wire: p50 {:.0} µs, p99 {:.0} µs", p50.as_secs_f64() * 1e6, p99.as_secs_f64() * 1e6);
    println!("  Postgres:        p50 {:.0} µs, p99 {:.0} µs", q50.as_secs_f64() * 1e6, q99.as_secs_f64() * 1e6);
    println!(
        "  ratio p50 {:.2}×, p99 {:.2}× (goal: p50 ≤ 1 ms: {})",
        p50.as_secs_f64() / q50.as_secs_f64(),
        p99.as_secs_f64() / q99.as_secs_f64(),
        if p50 <= Duration::from_millis(1) { "met" } else { "missed" }
    );
}

fn pgbench(conninfo: &str, rows: usize) -> f64 {
    pgbench_script(conninfo, &format!("\\set id random(0, {})\nSELECT * FROM item WHERE object_id = :id;\n", rows - 1))
}

/// pgbench -M extended, 16 clients, running `script` for PGBENCH_SECONDS; transactions/s.
pub(crate) fn pgbench_script(conninfo: &str, script_text: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("lookup.sql");
    std::fs::write(&script, script_text).unwrap();
    let mut args: Vec<String> =
        vec!["-n", "-M", "extended", "-c", "16", "-j", "2", "-T", PGBENCH_SECONDS, "-f"].into_iter().map(String::from).collect();
    args.push(script.display().to_string());
    // pgbench takes the connection as -h/-p/-U and the database name last.
    let kv: std::collections::HashMap<&str, &str> = conninfo.split_whitespace().filter_map(|p| p.split_once('=')).collect();
    for (flag, key) in [("-h", "host"), ("-p", "port"), ("-U", "user")] {
        args.push(flag.into());
        args.push(kv[key].into());
    }
    args.push(kv["dbname"].into());
    let mut command = std::process::Command::new("pgbench");
    command.args(&args);
    if let Some(options) = kv.get("options") {
        command.env("PGOPTIONS", options);
    }
    let out = command.output().expect("pgbench runs (apt-get install postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pgbench failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .expect("pgbench prints tps")
}

async fn pgbench_lookups(s: &Setup) {
    println!("wire-pgbench: pgbench -M extended -c 16 -j 2 -T {PGBENCH_SECONDS}, point lookups by object_id");
    let (wire, postgres) = (s.wire.clone(), s.postgres.clone());
    let ours = tokio::task::spawn_blocking(move || pgbench(&wire, ROWS)).await.unwrap();
    let theirs = tokio::task::spawn_blocking(move || pgbench(&postgres, ROWS)).await.unwrap();
    println!("  HeavenBase wire: {ours:.0} lookups/s");
    println!("  Postgres:        {theirs:.0} lookups/s");
    println!("  ratio {:.2} of Postgres (goal ≥ 0.5)", ours / theirs);
}

pub(crate) async fn stream_all(conninfo: &str) -> (usize, Duration) {
    let client = connect(conninfo).await;
    let t = Instant::now();
    let rows = client.query_raw("SELECT * FROM item", std::iter::empty::<i64>()).await.unwrap();
    pin_mut!(rows);
    let mut n = 0;
    while let Some(r) = rows.next().await {
        let r = r.unwrap();
        std::hint::black_box(r.get::<_, Option<&str>>(0));
        n += 1;
    }
    (n, t.elapsed())
}

async fn stream(s: &Setup) {
    println!("wire-stream: SELECT * FROM item, {ROWS} rows to one tokio-postgres client");
    let mut ours = Duration::MAX;
    let mut theirs = Duration::MAX;
    for _ in 0..3 {
        let (n, d) = stream_all(&s.wire).await;
        assert_eq!(n, ROWS);
        ours = ours.min(d);
        let (n, d) = stream_all(&s.postgres).await;
        assert_eq!(n, ROWS);
        theirs = theirs.min(d);
    }
    let rate = |d: Duration| ROWS as f64 / d.as_secs_f64();
    println!("  HeavenBase wire: {:.0} rows/s ({:.2} s)", rate(ours), ours.as_secs_f64());
    println!("  Postgres:        {:.0} rows/s ({:.2} s)", rate(theirs), theirs.as_secs_f64());
    println!("  ratio {:.2} of Postgres (goal ≥ 0.8)", rate(ours) / rate(theirs));
}
