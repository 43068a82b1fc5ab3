//! `upsert_many` of 100k rows (title, body, price, qty, tags) on the `debug`
//! preset, beside a raw rusqlite insert of the same rows into the same kind of
//! table (prepared statement, one transaction, SQLite in memory); and the same
//! on files: the `embedded` preset (a SQLite file in WAL mode, where the write
//! journal lives) beside raw rusqlite on a file with the same settings. The
//! workspace side also runs with `body` not indexed for full-text search, to
//! show what the search index costs a write.

use std::time::Instant;

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Row, Workspace};
use serde_json::json;

const ROWS: usize = 100_000;

/// The ingest benchmarks' entity: four kinds of field and a list.
pub(crate) fn item() -> EntityDef {
    EntityDef::new("item")
        .field(FieldDef::new("title", T::short_text()))
        .field(FieldDef::new("body", T::long_text()))
        .field(FieldDef::new("price", T::Float))
        .field(FieldDef::new("qty", T::Integer))
        .field(FieldDef::new("tags", T::array_of(T::short_text())))
}

/// Row `i` of `item`: a unique name (the id derives from it), prices repeating
/// every 1000 rows, quantities every 97.
pub(crate) fn item_row(i: usize) -> Row {
    json!({
        "name": format!("item {i}"),
        "title": format!("Title number {i}"),
        "body": format!("Body text of item {i}, long enough to look like a sentence or two of prose."),
        "price": (i % 1000) as f64 * 0.5,
        "qty": (i % 97) as i64,
        "tags": ["alpha", if i % 2 == 0 { "even" } else { "odd" }],
    })
    .as_object()
    .unwrap()
    .clone()
}

fn rows() -> Vec<Row> {
    (0..ROWS).map(item_row).collect()
}

/// One row of `item` as raw rusqlite inserts it; `tags` is the list's JSON text.
pub(crate) struct RawItem<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub price: f64,
    pub qty: i64,
    pub tags: String,
}

/// The baseline: the rows upserted into a table of the same columns with one
/// prepared statement in one transaction (in memory, or a WAL file as the
/// embedded preset keeps), ids derived as the workspace derives them.
/// `rows` is drawn inside the timing, so its conversion counts. Rows/s.
pub(crate) fn raw_rusqlite<'a>(rows: impl Iterator<Item = RawItem<'a>>, on_file: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let conn = if on_file {
        let conn = rusqlite::Connection::open(dir.path().join("raw.sqlite")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").unwrap();
        conn
    } else {
        rusqlite::Connection::open_in_memory().unwrap()
    };
    conn.execute_batch(
        "CREATE TABLE item (object_id TEXT PRIMARY KEY NOT NULL, name TEXT, title TEXT, body TEXT, price REAL, qty INTEGER, tags TEXT) WITHOUT ROWID",
    )
    .unwrap();
    let t = Instant::now();
    let mut conn = conn;
    let mut n = 0;
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO item (object_id, name, title, body, price, qty, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                      ON CONFLICT (object_id) DO UPDATE SET name = excluded.name, title = excluded.title, body = excluded.body, \
                      price = excluded.price, qty = excluded.qty, tags = excluded.tags",
            )
            .unwrap();
        for r in rows {
            // The same id derivation the workspace does, so both sides do equal work.
            let id = heavenbase::catalog::derive_object_id("item", r.name);
            stmt.execute(rusqlite::params![id, r.name, r.title, r.body, r.price, r.qty, r.tags]).unwrap();
            n += 1;
        }
    }
    tx.commit().unwrap();
    n as f64 / t.elapsed().as_secs_f64()
}

fn raw_items(rows: &[Row]) -> impl Iterator<Item = RawItem<'_>> {
    rows.iter().map(|r| RawItem {
        name: r["name"].as_str().unwrap(),
        title: r["title"].as_str().unwrap(),
        body: r["body"].as_str().unwrap(),
        price: r["price"].as_f64().unwrap(),
        qty: r["qty"].as_i64().unwrap(),
        tags: r["tags"].to_string(),
    })
}

/// `indexed`: `body` (LongText) indexed for full-text search, as by default;
/// otherwise not, to show what the index costs.
async fn workspace(rows: Vec<Row>, preset: &str, indexed: bool) -> f64 {
    let (_dir, home) = crate::home();
    let ws = Workspace::open_in(&home, "bench", Construction::preset(preset)).await.unwrap();
    let mut def = item();
    if !indexed {
        def.fields.iter_mut().filter(|f| f.name == "body").for_each(|f| f.search = Some(false));
    }
    ws.register(def, false).await.unwrap();
    let t = Instant::now();
    let ids = ws.upsert_many("item", rows).await.unwrap();
    let rate = ROWS as f64 / t.elapsed().as_secs_f64();
    assert_eq!(ids.len(), ROWS);
    assert_eq!(ws.count("item").await.unwrap(), ROWS);
    assert_eq!(ws.count("sys-catalog").await.unwrap(), ROWS);
    rate
}

pub async fn run() {
    let data = rows();
    for (preset, on_file) in [("debug", false), ("embedded", true)] {
        // Alternate, five runs each, so both sides see the same machine state; the
        // median of each side is reported (the best of runs flattered whichever
        // side had one quiet moment).
        let mut raw = Vec::new();
        let mut ours = Vec::new();
        let mut unindexed = Vec::new();
        for _ in 0..5 {
            raw.push(raw_rusqlite(raw_items(&data), on_file));
            ours.push(workspace(data.clone(), preset, true).await);
            unindexed.push(workspace(data.clone(), preset, false).await);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (raw, ours, unindexed) = (median(&mut raw), median(&mut ours), median(&mut unindexed));
        let place = if on_file { "SQLite file, WAL" } else { "SQLite in memory" };
        println!("ingest {ROWS} rows ({preset} preset: {place}, with Catalog cards; median of 5 runs)");
        println!("  raw rusqlite insert : {raw:>10.0} rows/s");
        println!("  workspace upsert_many: {ours:>10.0} rows/s");
        println!("  ratio (workspace / raw): {:.2}  (goal >= 0.50)", ours / raw);
        println!(
            "  without the body's search index: {unindexed:.0} rows/s ({:.2} of raw; the index costs {:.0}%)",
            unindexed / raw,
            100.0 * (1.0 - ours / unindexed)
        );
    }
}
