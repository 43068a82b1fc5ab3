//! SQLite's sqllogictest core corpus (select1–select5, tests/sqllogictest/)
//! over the wire: each file runs in a fresh embedded workspace served by
//! `hb serve`'s code, through tokio-postgres' simple-query protocol, with the
//! reference harness' rules (heavenbase_tests::logictest). A real Postgres 15
//! passes all of it; the `logictest` benchmark measures both side by side.

use std::time::{Duration, Instant};

use heavenbase::Construction;
use heavenbase_tests::logictest::{self, Outcome};

use crate::common::TestHome;
use crate::wire::{connect, start};

async fn run_file(file: &str) -> Outcome {
    let path = format!("{}/sqllogictest/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let records = logictest::parse(&text).unwrap();
    let h = TestHome::new();
    let ws = h.open("slt", Construction::preset("embedded")).await;
    let port = start(ws).await;
    let client = connect(port, "slt").await;
    let t = Instant::now();
    let out = logictest::run(&client, &records, Duration::from_secs(60)).await;
    println!("{file}: {}/{} passed ({:.2}%) in {:.1} s", out.passed, out.total, out.rate() * 100.0, t.elapsed().as_secs_f64());
    for f in out.failures.iter().take(40) {
        println!("  {file}:{}: {}\n    {}", f.line, f.reason, f.sql.replace('\n', "\n    "));
    }
    out
}

/// The bar: at least 99% of each file's records, with no accommodation
/// (every record a real Postgres runs, we run).
async fn passes(file: &str) {
    let out = run_file(file).await;
    assert!(out.total > 1000, "{file}: only {} records ran", out.total);
    assert!(out.rate() >= 0.99, "{file}: {}/{} passed", out.passed, out.total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_select1() {
    passes("select1.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_select2() {
    passes("select2.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_select3() {
    passes("select3.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_select4() {
    passes("select4.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_select5() {
    passes("select5.test").await;
}
