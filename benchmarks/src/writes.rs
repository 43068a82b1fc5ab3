//! The Arrow write path, each figure beside its baseline in the same run:
//! - insert-select: `INSERT INTO b SELECT * FROM a` of n rows (default 1M)
//!   inside one `debug` workspace, beside `upsert_many` of the same rows into
//!   `a` (the ingest path). Goal ≥ 0.5. Peak memory of the INSERT reported.
//! - copy: `COPY product FROM STDIN (FORMAT csv)` of n rows (default 1M) over
//!   the wire into an `embedded` workspace (a SQLite file), beside Postgres'
//!   own `COPY … (FORMAT csv)` of the same bytes into an equivalent table
//!   (`HEAVENBASE_TEST_PG`). Goal ≥ 0.5.
//! - import: `hb import` of a 100k-row, 5-column CSV into an `embedded`
//!   workspace, end to end (the `hb` binary beside this one), beside raw
//!   rusqlite inserting the same rows into a WAL-mode file database with one
//!   prepared statement in one transaction. Goal ≥ 0.5.
//!
//! Row shapes: ids derive from a unique name per row; prices repeat every 1000
//! rows, quantities every 97; titles are distinct. (Column values do not change
//! the write path's work per row: every column is checked whole.)

use std::time::Instant;

use futures::{SinkExt, pin_mut};
use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Row, Workspace};

use crate::home;
use crate::ingest::{item, item_row};
use crate::wire::{connect, pg_url, serve_on_own_runtime};

/// A `/proc/self/status` memory figure (`VmHWM`: peak resident, `VmRSS`:
/// resident now) in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Start the peak over from the current resident size (Linux: clear_refs 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn insert_select(rows: usize) {
    let (_dir, home) = home();
    let ws = Workspace::open_in(&home, "bench", Construction::preset("debug")).await.unwrap();
    ws.register(item(), false).await.unwrap();
    let mut b = item();
    b.entity_id = "item_copy".into();
    ws.register(b, false).await.unwrap();

    // Baseline: the ingest path (JSON rows through upsert_many), 100k at a time.
    let mut ingest_secs = 0.0;
    for start in (0..rows).step_by(100_000) {
        let chunk: Vec<Row> = (start..(start + 100_000).min(rows)).map(item_row).collect();
        let t = Instant::now();
        ws.upsert_many("item", chunk).await.unwrap();
        ingest_secs += t.elapsed().as_secs_f64();
    }
    let ingest = rows as f64 / ingest_secs;

    let before = status_mib("VmRSS");
    reset_peak();
    let t = Instant::now();
    let n = ws.sql("INSERT INTO item_copy SELECT * FROM item").await.unwrap();
    let rate = rows as f64 / t.elapsed().as_secs_f64();
    let peak = status_mib("VmHWM");
    let after = status_mib("VmRSS");
    assert_eq!(heavenbase_rows(&n), rows as u64);
    assert_eq!(ws.count("item_copy").await.unwrap(), rows);
    println!("insert-select {rows} rows (debug preset, with Catalog cards)");
    println!("  upsert_many (ingest path)        : {ingest:>10.0} rows/s");
    println!("  INSERT INTO b SELECT * FROM a    : {rate:>10.0} rows/s");
    println!("  ratio (insert-select / ingest)   : {:.2}  (goal >= 0.50)", rate / ingest);
    println!(
        "  peak memory during the INSERT    : {peak:.0} MiB (resident before: {before:.0} MiB, after: {after:.0} MiB; \
         the in-memory SQLite holds the new rows after)"
    );
}

fn heavenbase_rows(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> u64 {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    batches.first().map_or(0, |b| b.column(0).as_primitive::<UInt64Type>().value(0))
}

/// `n` CSV lines: name, title, price, qty (ids derive from the names).
/// Rows `from..from + n` of the product CSV (names are unique per row).
fn product_csv(from: usize, n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 48);
    for i in from..from + n {
        out.push_str(&format!("product {i},\"Title, number {i}\",{},{}\n", (i % 1000) as f64 * 0.5, i % 97));
    }
    out.into_bytes()
}

/// COPY `data` in 1 MiB messages, as psql sends it; seconds taken.
async fn copy_in(client: &tokio_postgres::Client, statement: &str, data: &[u8]) -> f64 {
    let t = Instant::now();
    let sink = client.copy_in(statement).await.unwrap();
    pin_mut!(sink);
    for chunk in data.chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    sink.finish().await.unwrap();
    t.elapsed().as_secs_f64()
}

pub async fn copy(rows: usize) {
    let data = product_csv(0, rows);
    let (_dir, home) = home();
    let ws = Workspace::open_in(&home, "bench", Construction::preset("embedded")).await.unwrap();
    ws.register(
        EntityDef::new("product")
            .field(FieldDef::new("title", T::short_text()))
            .field(FieldDef::new("price", T::Float))
            .field(FieldDef::new("qty", T::Integer)),
        false,
    )
    .await
    .unwrap();
    let port = serve_on_own_runtime(ws.clone());
    let wire = connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=bench")).await;
    let pg = connect(&pg_url()).await;
    // The equivalent table: the id column derived the same way is the primary key.
    pg.batch_execute(
        "DROP SCHEMA IF EXISTS hb_copy_bench CASCADE; CREATE SCHEMA hb_copy_bench;
         CREATE TABLE hb_copy_bench.product (name text PRIMARY KEY, title text, price float8, qty int8);",
    )
    .await
    .unwrap();
    let pg_copy = "COPY hb_copy_bench.product (name, title, price, qty) FROM STDIN (FORMAT csv)";
    let our_copy = "COPY product (name, title, price, qty) FROM STDIN (FORMAT csv)";
    println!("copy {rows} rows, CSV, over the wire (embedded preset: a SQLite file, with Catalog cards)");
    // Into empty tables, then as many new rows into the filled ones (the
    // steady state: existing rows and cards to probe and to insert among).
    for (round, label) in ["into an empty table", "into a table of as many rows"].iter().enumerate() {
        let data = if round == 0 { data.clone() } else { product_csv(rows, rows) };
        let pg_secs = copy_in(&pg, pg_copy, &data).await;
        let ours_secs = copy_in(&wire, our_copy, &data).await;
        assert_eq!(ws.count("product").await.unwrap(), rows * (round + 1));
        let (pg_rate, ours_rate) = (rows as f64 / pg_secs, rows as f64 / ours_secs);
        println!("  {label}:");
        println!("    Postgres COPY                : {pg_rate:>10.0} rows/s");
        println!("    workspace COPY over the wire : {ours_rate:>10.0} rows/s");
        println!("    ratio (workspace / Postgres) : {:.2}  (goal >= 0.50)", ours_rate / pg_rate);
    }
    pg.batch_execute("DROP SCHEMA hb_copy_bench CASCADE").await.unwrap();
}

const IMPORT_ROWS: usize = 100_000;

fn import_csv(path: &std::path::Path) {
    let mut out = String::from("name,title,price,qty,active\n");
    for i in 0..IMPORT_ROWS {
        out.push_str(&format!("row {i},Title number {i},{},{},{}\n", (i % 1000) as f64 * 0.5, i % 97, i % 2 == 0));
    }
    std::fs::write(path, out).unwrap();
}

/// Raw rusqlite: the same rows into a WAL-mode file, one prepared statement,
/// one transaction, ids derived the same way; seconds taken.
fn raw_rusqlite_file(dir: &std::path::Path) -> f64 {
    let path = dir.join("raw.sqlite");
    let t = Instant::now();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE row (object_id TEXT PRIMARY KEY NOT NULL, name TEXT, title TEXT, price REAL, qty INTEGER, active INTEGER) WITHOUT ROWID;",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx.prepare("INSERT INTO row VALUES (?1, ?2, ?3, ?4, ?5, ?6)").unwrap();
        for i in 0..IMPORT_ROWS {
            let name = format!("row {i}");
            let id = heavenbase::catalog::derive_object_id("row", &name);
            stmt.execute(rusqlite::params![
                id,
                name,
                format!("Title number {i}"),
                (i % 1000) as f64 * 0.5,
                (i % 97) as i64,
                i % 2 == 0
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    t.elapsed().as_secs_f64()
}

pub async fn import() {
    let Some(hb) = crate::hb::Hb::find("import") else { return };
    let csv = hb.home().join("rows.csv");
    import_csv(&csv);
    let raw = IMPORT_ROWS as f64 / raw_rusqlite_file(hb.home());
    hb.run(&["setup"]);
    let t = Instant::now();
    let out = hb.run(&["import", csv.to_str().unwrap(), "--entity", "row", "--name-column", "name"]);
    let ours = IMPORT_ROWS as f64 / t.elapsed().as_secs_f64();
    assert!(out.contains(&format!("imported {IMPORT_ROWS} rows")), "{out}");
    println!("import {IMPORT_ROWS} rows x 5 columns from CSV (hb import, embedded preset: a SQLite file, end to end)");
    println!("  raw rusqlite, WAL file, one transaction : {raw:>10.0} rows/s");
    println!("  hb import                               : {ours:>10.0} rows/s");
    println!("  ratio (hb import / raw)                 : {:.2}  (goal >= 0.50)", ours / raw);
}
