//! `txn`: 1,000 single-row upserts on the `embedded` preset (a SQLite file,
//! WAL, as users run it) in one transaction block committed once, beside the
//! same upserts autocommitted one by one, in the same run. Two shapes: 1,000
//! distinct rows, and 1,000 writes over 10 hot rows (a block that rewrites
//! what it wrote).

use std::time::Instant;

use heavenbase::{Construction, Workspace};

use crate::ingest::{item, item_row};

const WRITES: usize = 1_000;

async fn workspace(name: &str) -> (tempfile::TempDir, Workspace) {
    let (dir, home) = crate::home();
    let ws = Workspace::open_in(&home, name, Construction::preset("embedded")).await.unwrap();
    ws.register(item(), false).await.unwrap();
    (dir, ws)
}

/// Rows per second of `WRITES` upserts of `row(i)`, autocommitted or in one block.
async fn rate(block: bool, row: impl Fn(usize) -> usize) -> f64 {
    let (_dir, ws) = workspace(if block { "block" } else { "auto" }).await;
    let t = Instant::now();
    if block {
        let tx = ws.begin().unwrap();
        for i in 0..WRITES {
            tx.upsert_many("item", vec![item_row(row(i))]).await.unwrap();
        }
        tx.commit().await.unwrap();
    } else {
        for i in 0..WRITES {
            ws.upsert_many("item", vec![item_row(row(i))]).await.unwrap();
        }
    }
    let rate = WRITES as f64 / t.elapsed().as_secs_f64();
    let distinct = (0..WRITES).map(&row).collect::<std::collections::HashSet<_>>().len();
    assert_eq!(ws.count("item").await.unwrap(), distinct);
    rate
}

pub async fn run() {
    println!("txn: {WRITES} single-row upserts, embedded preset (SQLite file), median of 3 runs");
    for (shape, hot) in [("distinct rows", WRITES), ("10 hot rows", 10)] {
        let mut auto = Vec::new();
        let mut block = Vec::new();
        for _ in 0..3 {
            auto.push(rate(false, |i| i % hot).await);
            block.push(rate(true, |i| i % hot).await);
        }
        auto.sort_by(f64::total_cmp);
        block.sort_by(f64::total_cmp);
        let (auto, block) = (auto[1], block[1]);
        println!(
            "  {shape:<13}: autocommit {auto:>9.0} writes/s, one block {block:>9.0} writes/s, ratio (block / autocommit) {:.2}",
            block / auto
        );
    }
}
