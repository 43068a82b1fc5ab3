//! Ratio benchmarks: every figure is measured beside its baseline in the same run,
//! because absolute times on shared machines are noise.
//!
//! `cargo run --release -p heavenbase-benchmarks -- [ingest|ingest-typed|stitch|lookup|sqlite-aggregate|pg-ingest|pg-aggregate|ann|near-small|search|wire|wire-stream|wire-key|insert-select|copy|import|txn|mcp|flight|soak|memory|logictest|all] [rows]`
//! (the pg-*, wire and copy figures need the Postgres of `HEAVENBASE_TEST_PG`;
//! import and soak run the `hb` binary beside this one; `rows` sizes insert-select and copy;
//! `soak [minutes] [clients]`, 10 and 64 unless told, is not part of `all`;
//! nor is `memory [GiB]` (a 4 GiB sort under a 512 MB limit, and a stalled reader);
//! nor is `logictest [corpus-dir [files-per-folder]]`, the sqllogictest report)

mod flight;
mod hb;
mod ingest;
mod keys;
mod logictest;
mod mcp;
mod memory;
mod postgres;
mod query;
mod search;
mod soak;
mod txn;
mod typed;
mod vectors;
mod wire;
mod writes;

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let run = |name: &str| what == "all" || what == name;
    if run("ingest") {
        ingest::run().await;
    }
    if run("ingest-typed") {
        typed::run().await;
    }
    if run("stitch") {
        query::stitched_scan().await;
    }
    if run("lookup") {
        query::point_lookup().await;
    }
    if run("sqlite-aggregate") {
        query::sqlite_aggregate().await;
    }
    if run("pg-ingest") {
        postgres::ingest().await;
    }
    if run("pg-aggregate") {
        postgres::aggregate().await;
    }
    if run("ann") {
        vectors::ann().await;
    }
    if run("near-small") {
        vectors::small().await;
    }
    if run("search") {
        search::run().await;
    }
    if run("wire") {
        wire::run().await;
    }
    if what == "wire-stream" {
        wire::run_stream().await;
    }
    let rows = std::env::args().nth(2).and_then(|n| n.parse::<usize>().ok()).unwrap_or(1_000_000);
    if run("insert-select") {
        writes::insert_select(rows).await;
    }
    if run("copy") {
        writes::copy(rows).await;
    }
    if run("import") {
        writes::import().await;
    }
    if run("txn") {
        txn::run().await;
    }
    if run("flight") {
        flight::run().await;
    }
    if run("mcp") {
        mcp::run().await;
    }
    if what == "soak" {
        // Not part of `all`: it runs for minutes.
        let arg = |n: usize, default: u64| std::env::args().nth(n).and_then(|v| v.parse().ok()).unwrap_or(default);
        soak::run(arg(2, 10), arg(3, 64) as usize).await;
    }
    if what == "memory" {
        // Not part of `all`: it sorts gigabytes.
        memory::run(std::env::args().nth(2).and_then(|n| n.parse::<f64>().ok()).unwrap_or(4.0)).await;
    }
    if what == "logictest" {
        let corpus = std::env::args().nth(2).map(std::path::PathBuf::from);
        logictest::run(corpus, std::env::args().nth(3).and_then(|n| n.parse().ok()).unwrap_or(2)).await;
    }
    if run("wire-key") {
        // 10k rows unless told: the table size the name-lookup goal names.
        keys::run(std::env::args().nth(2).and_then(|n| n.parse::<usize>().ok()).unwrap_or(10_000)).await;
    }
}

/// Best of `n` runs of `f`: the least disturbed measurement.
pub async fn best_of<F, Fut>(n: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        best = best.min(t.elapsed());
    }
    best
}

/// Upsert rows `0..n` of `entity`, row `i` made by `row`, 100k per call;
/// seconds taken.
pub async fn load_rows(ws: &heavenbase::Workspace, entity: &str, n: usize, row: impl Fn(usize) -> serde_json::Value) -> f64 {
    let t = Instant::now();
    for start in (0..n).step_by(100_000) {
        let rows: Vec<heavenbase::Row> = (start..(start + 100_000).min(n))
            .map(|i| match row(i) {
                serde_json::Value::Object(r) => r,
                other => panic!("row {i} is not an object: {other}"),
            })
            .collect();
        ws.upsert_many(entity, rows).await.unwrap();
    }
    t.elapsed().as_secs_f64()
}

/// A process's resident set in MiB, from /proc (0 when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

pub fn home() -> (tempfile::TempDir, heavenbase::Home) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = heavenbase::Home::new(dir.path());
    (dir, home)
}
