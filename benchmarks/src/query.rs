//! Reads: a stitched scan of 1M rows whose columns live in two field groups,
//! beside a DataFusion MemTable holding all the columns; and a point lookup by
//! object_id at 10k, 100k and 1M rows; GROUP BY and top-N federated into a
//! SQLite file, beside raw rusqlite running the same SQL on the same file.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Row, Workspace};
use serde_json::json;

const SCAN_ROWS: usize = 1_000_000;
const QUERY: &str = "SELECT qty % 10 AS k, sum(price) AS s, count(*) AS n FROM item GROUP BY qty % 10 ORDER BY k";

fn rows(n: usize, offset: usize) -> Vec<Row> {
    (offset..offset + n)
        .map(|i| {
            json!({"name": format!("item {i}"), "title": format!("Title {i}"), "price": (i % 1000) as f64 * 0.5, "qty": (i % 97) as i64})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect()
}

fn item(split: bool) -> EntityDef {
    let qty = FieldDef::new("qty", T::Integer);
    EntityDef::new("item")
        .field(FieldDef::new("title", T::short_text()))
        .field(FieldDef::new("price", T::Float))
        .field(if split { qty.store("side") } else { qty })
}

pub async fn stitched_scan() {
    let (_dir, home) = crate::home();
    let backends = json!({"main": {"type": "inmem"}, "side": {"type": "inmem"}});
    let ws = Workspace::open_in(&home, "stitch", Construction::Backends(backends)).await.unwrap();
    ws.register(item(true), false).await.unwrap();
    for chunk in 0..10 {
        ws.upsert_many("item", rows(SCAN_ROWS / 10, chunk * SCAN_ROWS / 10)).await.unwrap();
    }
    // The same rows, all columns, in a MemTable.
    let batches = ws.sql("SELECT object_id, name, title, price, qty FROM item").await.unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("object_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("title", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("qty", DataType::Int64, true),
    ]));
    let merged = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let merged = RecordBatch::try_new(schema.clone(), merged.columns().to_vec()).unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("item", Arc::new(MemTable::try_new(schema, vec![vec![merged]]).unwrap())).unwrap();
    let want = ctx.sql(QUERY).await.unwrap().collect().await.unwrap();
    let got = ws.sql(QUERY).await.unwrap();
    assert_eq!(format_batches(&want), format_batches(&got), "same answer");
    let base = crate::best_of(5, || async {
        ctx.sql(QUERY).await.unwrap().collect().await.unwrap();
    })
    .await;
    let ours = crate::best_of(5, || async {
        ws.sql(QUERY).await.unwrap();
    })
    .await;
    println!("stitched scan: {SCAN_ROWS} rows, price in group main, qty in group side (both in-memory)");
    println!("  query: {QUERY}");
    println!("  DataFusion MemTable : {:>8.1} ms", base.as_secs_f64() * 1e3);
    println!("  stitched entity     : {:>8.1} ms", ours.as_secs_f64() * 1e3);
    println!("  ratio (stitched / MemTable): {:.2}  (goal <= 1.30)", ours.as_secs_f64() / base.as_secs_f64());
}

fn format_batches(b: &[RecordBatch]) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(b).unwrap().to_string()
}

pub async fn point_lookup() {
    let (_dir, home) = crate::home();
    // debug: main is SQLite in memory; `side` (in-memory) holds qty, so a lookup
    // probes two groups by key.
    let backends = json!({"main": {"type": "sqlite", "database": ":memory:"}, "side": {"type": "inmem"}});
    let ws = Workspace::open_in(&home, "lookup", Construction::Backends(backends)).await.unwrap();
    ws.register(item(true), false).await.unwrap();
    println!("point lookup by object_id (SQLite main + in-memory side group)");
    let mut first = None;
    let mut loaded = 0;
    for size in [10_000usize, 100_000, 1_000_000] {
        while loaded < size {
            let n = (size - loaded).min(100_000);
            ws.upsert_many("item", rows(n, loaded)).await.unwrap();
            loaded += n;
        }
        let probes: Vec<String> =
            (0..1000).map(|i| heavenbase::catalog::derive_object_id("item", &format!("item {}", (i * 7919) % size))).collect();
        let mut sql_best = f64::MAX;
        let mut get_best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for id in &probes {
                let b = ws.sql(&format!("SELECT title, price, qty FROM item WHERE object_id = '{id}'")).await.unwrap();
                assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
            }
            sql_best = sql_best.min(t.elapsed().as_secs_f64() * 1e6 / probes.len() as f64);
            let t = Instant::now();
            for id in &probes {
                assert!(ws.get("item", id).await.unwrap().is_some());
            }
            get_best = get_best.min(t.elapsed().as_secs_f64() * 1e6 / probes.len() as f64);
        }
        let (s0, g0) = *first.get_or_insert((sql_best, get_best));
        println!(
            "  {size:>9} rows: SQL {sql_best:>7.1} us/lookup ({:.2}x of 10k), get() {get_best:>6.1} us/lookup ({:.2}x of 10k)",
            sql_best / s0,
            get_best / g0
        );
    }
    println!("  goal: flat, at most 1.20x growth from 10k to 1M");
}

const AGG_ROWS: usize = 1_000_000;

/// GROUP BY and top-N over 1M rows of an entity stored whole in a SQLite file
/// (`"federate": "all"`): federated into one SQLite statement, beside the same SQL run by raw rusqlite
/// on the same file (the baseline), and beside the stitched DataFusion plan
/// (federation off) for what federation gains. The grouping column comes in
/// three shapes: uniform (40 groups), skewed (90% of rows in one group) and
/// wide (100k groups).
pub async fn sqlite_aggregate() {
    let (dir, home) = crate::home();
    let db = dir.path().join("agg.sqlite");
    // Federation of everything, to measure what the default (top-N only) leaves out.
    let backends = json!({"main": {"type": "sqlite", "database": db.display().to_string(), "federate": "all"}});
    let ws = Workspace::open_in(&home, "agg", Construction::Backends(backends)).await.unwrap();
    ws.register(
        EntityDef::new("sale")
            .field(FieldDef::new("uniform", T::short_text()))
            .field(FieldDef::new("skewed", T::short_text()))
            .field(FieldDef::new("wide", T::short_text()))
            .field(FieldDef::new("amount", T::Float))
            .field(FieldDef::new("qty", T::Integer)),
        false,
    )
    .await
    .unwrap();
    // Amounts are quarters: every sum is exact, so SQLite's and DataFusion's
    // answers match to the last bit whatever order they add in.
    let secs = crate::load_rows(&ws, "sale", AGG_ROWS, |i| {
        let skewed = if i % 10 == 0 { format!("s{:02}", i % 37) } else { "s00".to_string() };
        json!({"name": format!("sale {i}"), "uniform": format!("c{:02}", i % 40), "skewed": skewed,
               "wide": format!("w{:06}", (i * 7919) % 100_000), "amount": ((i * 31) % 1000) as f64 * 0.25,
               "qty": (i % 13) as i64})
    })
    .await;
    println!("sqlite aggregate: loaded {AGG_ROWS} rows into a SQLite file in {secs:.1} s");
    let raw = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let raw_rows = |sql: &str| -> usize {
        let mut stmt = raw.prepare_cached(sql).unwrap();
        let ncols = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut n = 0;
        while let Some(row) = rows.next().unwrap() {
            for c in 0..ncols {
                std::hint::black_box(row.get_ref(c).unwrap());
            }
            n += 1;
        }
        n
    };
    let queries: Vec<(String, String)> = ["uniform", "skewed", "wide"]
        .iter()
        .map(|col| {
            (
                format!("GROUP BY {col}"),
                format!("SELECT {col} AS k, count(*) AS n, sum(qty) AS q, avg(amount) AS a FROM sale GROUP BY {col} ORDER BY k"),
            )
        })
        .chain(std::iter::once((
            "top-10 by amount".to_string(),
            "SELECT name, amount FROM sale ORDER BY amount DESC, name LIMIT 10".to_string(),
        )))
        .collect();
    let mut federated = Vec::new();
    for (label, sql) in &queries {
        let plan = format_batches(&ws.sql(&format!("EXPLAIN {sql}")).await.unwrap());
        assert!(plan.contains("SqliteQueryExec"), "{label} is federated: {plan}");
        let want = raw_rows(sql);
        let ours = crate::best_of(5, || async {
            let b = ws.sql(sql).await.unwrap();
            assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), want);
        })
        .await;
        let base = crate::best_of(5, || async {
            assert_eq!(raw_rows(sql), want);
        })
        .await;
        federated.push((format_batches(&ws.sql(sql).await.unwrap()), ours, base));
    }
    // The same queries with federation off: DataFusion over the pushed scan.
    assert!(ws.session().remove_optimizer_rule("heavenbase_federation"));
    println!("  over {AGG_ROWS} rows: raw rusqlite | workspace (one SQLite statement) | ratio (goal <= 1.2x) | federation off");
    let mut worst: f64 = 0.0;
    for ((label, sql), (answer, ours, base)) in queries.iter().zip(federated) {
        assert_eq!(format_batches(&ws.sql(sql).await.unwrap()), answer, "{label}: same answer without federation");
        let stitched = crate::best_of(3, || async {
            ws.sql(sql).await.unwrap();
        })
        .await;
        let ratio = ours.as_secs_f64() / base.as_secs_f64();
        worst = worst.max(ratio);
        println!(
            "  {label:<18} {:>8.1} ms | {:>8.1} ms | {ratio:.2}x | {:>8.1} ms (federated / off: {:.2}x)",
            base.as_secs_f64() * 1e3,
            ours.as_secs_f64() * 1e3,
            stitched.as_secs_f64() * 1e3,
            ours.as_secs_f64() / stitched.as_secs_f64()
        );
    }
    println!("  worst ratio over the shapes: {worst:.2}x (goal <= 1.2x)");
}
