//! `ingest-typed`: 100k structs written three ways from the same `Vec<Item>`:
//! `upsert_many_typed` (#[derive(Entity)]: struct fields straight into Arrow
//! columns), the JSON-row path (`serde_json::to_value` of each struct, then
//! `upsert_many`), and raw rusqlite (ingest.rs's baseline) into an in-memory
//! SQLite table of the same columns. The workspace is the `debug` preset
//! (SQLite in memory) with `body` not indexed for full-text search, so that all
//! three write the same table; the workspace also writes a Catalog card per
//! row, which raw rusqlite does not.

use std::time::Instant;

use heavenbase::{Construction, Entity, Workspace};
use serde::Serialize;

const ROWS: usize = 100_000;

#[derive(Entity, Serialize, Clone)]
#[hb(entity = "item")]
struct Item {
    name: String,
    title: String,
    #[hb(long_text, search = false)]
    body: String,
    price: f64,
    qty: i64,
    tags: Vec<String>,
}

/// The ingest benchmark's rows (ingest.rs's item_row) as structs.
fn items() -> Vec<Item> {
    (0..ROWS)
        .map(|i| Item {
            name: format!("item {i}"),
            title: format!("Title number {i}"),
            body: format!("Body text of item {i}, long enough to look like a sentence or two of prose."),
            price: (i % 1000) as f64 * 0.5,
            qty: (i % 97) as i64,
            tags: vec!["alpha".into(), if i % 2 == 0 { "even".into() } else { "odd".into() }],
        })
        .collect()
}

async fn workspace() -> (tempfile::TempDir, Workspace) {
    let (dir, home) = crate::home();
    let ws = Workspace::open_in(&home, "bench", Construction::preset("debug")).await.unwrap();
    ws.register_typed::<Item>().await.unwrap();
    (dir, ws)
}

async fn typed(items: &[Item]) -> f64 {
    let (_dir, ws) = workspace().await;
    let t = Instant::now();
    let ids = ws.upsert_many_typed(items).await.unwrap();
    let rate = ROWS as f64 / t.elapsed().as_secs_f64();
    assert_eq!(ids.len(), ROWS);
    assert_eq!(ws.count("item").await.unwrap(), ROWS);
    rate
}

async fn json_rows(items: &[Item]) -> f64 {
    let (_dir, ws) = workspace().await;
    let t = Instant::now();
    let rows: Vec<heavenbase::Row> = items
        .iter()
        .map(|item| match serde_json::to_value(item).unwrap() {
            serde_json::Value::Object(row) => row,
            _ => unreachable!("a struct serializes to an object"),
        })
        .collect();
    let ids = ws.upsert_many("item", rows).await.unwrap();
    let rate = ROWS as f64 / t.elapsed().as_secs_f64();
    assert_eq!(ids.len(), ROWS);
    assert_eq!(ws.count("item").await.unwrap(), ROWS);
    rate
}

fn raw_rusqlite(items: &[Item]) -> f64 {
    let rows = items.iter().map(|item| crate::ingest::RawItem {
        name: &item.name,
        title: &item.title,
        body: &item.body,
        price: item.price,
        qty: item.qty,
        tags: serde_json::to_string(&item.tags).unwrap(),
    });
    crate::ingest::raw_rusqlite(rows, false)
}

pub async fn run() {
    let items = items();
    // Alternated, five runs each; medians reported (see ingest.rs).
    let (mut raw, mut json, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        raw.push(raw_rusqlite(&items));
        json.push(json_rows(&items).await);
        ours.push(typed(&items).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (raw, json, ours) = (median(&mut raw), median(&mut json), median(&mut ours));
    println!("ingest-typed {ROWS} structs (debug preset: SQLite in memory, with Catalog cards; median of 5 runs)");
    println!("  raw rusqlite insert     : {raw:>10.0} rows/s");
    println!("  JSON rows (upsert_many)  : {json:>10.0} rows/s");
    println!("  upsert_many_typed        : {ours:>10.0} rows/s");
    println!("  ratio typed / JSON rows  : {:.2}  (goal > 1)", ours / json);
    println!("  ratio typed / raw        : {:.2}  (goal >= 0.60)", ours / raw);
}
