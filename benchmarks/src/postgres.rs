//! The Postgres backend beside Postgres itself, on the same server in the same run:
//! - ingest: `upsert_many` of 100k rows into a Postgres entity, beside a direct
//!   binary COPY of the same rows with tokio-postgres;
//! - aggregate: a GROUP BY over 1M rows through the workspace (federated into one
//!   statement), beside the same SQL sent to Postgres directly. Goal: ≤ 1.2×.
//!
//! The server is `HEAVENBASE_TEST_PG` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::time::Instant;

use futures::pin_mut;
use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Row, Workspace};
use serde_json::json;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::ingest::{item, item_row};
use crate::{best_of, home};

const INGEST_ROWS: usize = 100_000;
const AGG_ROWS: usize = 1_000_000;

use crate::wire::pg_url as url;

async fn client() -> tokio_postgres::Client {
    crate::wire::connect(&url()).await
}

/// The ingest benchmark's rows without their list column (the direct COPY
/// table has none).
fn item_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let mut row = item_row(i);
            row.remove("tags");
            row
        })
        .collect()
}

async fn open(schema: &str, id: &str) -> (tempfile::TempDir, Workspace) {
    let c = client().await;
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
    let (dir, home) = home();
    let backends = json!({"main": {"type": "postgres", "url": url(), "schema": schema}});
    let ws = Workspace::open_in(&home, id, Construction::Backends(backends)).await.unwrap();
    (dir, ws)
}

pub async fn ingest() {
    let rows = item_rows(INGEST_ROWS);
    // Direct: binary COPY of the same rows (ids derived the same way) into the same table shape.
    let c = client().await;
    c.batch_execute(
        "DROP SCHEMA IF EXISTS bench_copy CASCADE; CREATE SCHEMA bench_copy; \
         CREATE TABLE bench_copy.item (object_id text COLLATE \"C\" PRIMARY KEY, name text COLLATE \"C\", \
         title text COLLATE \"C\", body text COLLATE \"C\", price float8, qty int8)",
    )
    .await
    .unwrap();
    let t = Instant::now();
    let sink = c.copy_in("COPY bench_copy.item FROM STDIN (FORMAT binary)").await.unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::FLOAT8, Type::INT8]);
    pin_mut!(writer);
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        let id = heavenbase::catalog::derive_object_id("item", name);
        let price = r["price"].as_f64().unwrap();
        let qty = r["qty"].as_i64().unwrap();
        let values: [&(dyn ToSql + Sync); 6] =
            [&id, &name, &r["title"].as_str().unwrap(), &r["body"].as_str().unwrap(), &price, &qty];
        writer.as_mut().write(&values).await.unwrap();
    }
    writer.finish().await.unwrap();
    let direct = t.elapsed().as_secs_f64();

    let (_dir, ws) = open("bench_ingest", "bench-ingest").await;
    let mut def = item();
    def.fields.retain(|f| f.name != "tags");
    ws.register(def, false).await.unwrap();
    let t = Instant::now();
    ws.upsert_many("item", rows).await.unwrap();
    let ours = t.elapsed().as_secs_f64();
    assert_eq!(ws.count("item").await.unwrap(), INGEST_ROWS);
    println!(
        "postgres ingest {INGEST_ROWS} rows: direct COPY {:.0} rows/s, workspace upsert_many {:.0} rows/s \
         (row and Catalog card, both in Postgres): ratio {:.2}",
        INGEST_ROWS as f64 / direct,
        INGEST_ROWS as f64 / ours,
        direct / ours
    );
    c.batch_execute("DROP SCHEMA bench_copy CASCADE; DROP SCHEMA bench_ingest CASCADE").await.unwrap();
}

pub async fn aggregate() {
    let (_dir, ws) = open("bench_agg", "bench-agg").await;
    ws.register(
        EntityDef::new("sale")
            .field(FieldDef::new("category", T::short_text()))
            .field(FieldDef::new("amount", T::Float))
            .field(FieldDef::new("qty", T::Integer)),
        false,
    )
    .await
    .unwrap();
    let secs = crate::load_rows(&ws, "sale", AGG_ROWS, |i| {
        json!({"name": format!("sale {i}"), "category": format!("c{:02}", i % 40), "amount": (i % 1000) as f64 * 0.25,
               "qty": (i % 13) as i64})
    })
    .await;
    println!("postgres aggregate: loaded {AGG_ROWS} rows in {secs:.1} s");
    let c = client().await;
    c.batch_execute("ANALYZE bench_agg.sale").await.unwrap();
    let sql = "SELECT category, count(*) AS n, sum(qty) AS q, avg(amount) AS a FROM sale GROUP BY category ORDER BY category";
    let direct_sql = sql.replace("FROM sale", "FROM bench_agg.sale");
    let plan = ws.sql(&format!("EXPLAIN {sql}")).await.unwrap();
    let plan_text = datafusion::arrow::util::pretty::pretty_format_batches(&plan).unwrap().to_string();
    assert!(plan_text.contains("PostgresQueryExec"), "the aggregate is federated: {plan_text}");
    let ours = best_of(5, || async {
        let b = ws.sql(sql).await.unwrap();
        assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 40);
    })
    .await;
    let direct = best_of(5, || async {
        let rows = c.query(direct_sql.as_str(), &[]).await.unwrap();
        assert_eq!(rows.len(), 40);
    })
    .await;
    println!(
        "postgres aggregate GROUP BY over {AGG_ROWS} rows: direct {:.1} ms, workspace {:.1} ms: {:.2}x (goal <= 1.2x)",
        direct.as_secs_f64() * 1e3,
        ours.as_secs_f64() * 1e3,
        ours.as_secs_f64() / direct.as_secs_f64()
    );
    c.batch_execute("DROP SCHEMA bench_agg CASCADE").await.unwrap();
}
