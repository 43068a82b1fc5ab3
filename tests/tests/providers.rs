//! Backends on their own: the `Backend` contract, for SQLite (a real file) and
//! in-memory, and `GroupTable` in a plain DataFusion session.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use heavenbase::LogicalType as T;
use heavenbase::catalog::IndexPlan;
use heavenbase::providers::inmem::InmemBackend;
use heavenbase::providers::sqlite::SqliteBackend;
use heavenbase::providers::{Backend, ColumnSpec, GroupSpec, GroupTable, ScanRequest};
use serde_json::json;

use crate::common::{cells, rows};

fn group() -> GroupSpec {
    let price = ColumnSpec { default: Some(json!(1.5)), ..ColumnSpec::new("price", T::Float) };
    GroupSpec::new(
        "item",
        "item",
        vec![ColumnSpec::new("sku", T::short_text()), price],
        vec![IndexPlan { fields: vec!["sku".into()], backend: "b".into(), unique: true }],
    )
}

fn batch(ids: &[&str], skus: &[Option<&str>], prices: Option<&[Option<f64>]>) -> RecordBatch {
    let mut fields = vec![Field::new("object_id", DataType::Utf8, false), Field::new("sku", DataType::Utf8, true)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids.to_vec())), Arc::new(StringArray::from(skus.to_vec()))];
    if let Some(p) = prices {
        fields.push(Field::new("price", DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from(p.to_vec())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

async fn contract(b: Arc<dyn Backend>) {
    let g = group();
    b.ensure_group(&g).await.unwrap();
    b.ensure_group(&g).await.unwrap();
    b.upsert(&g, batch(&["a", "b", "c"], &[Some("A"), Some("B"), None], Some(&[Some(1.0), None, Some(3.0)]))).await.unwrap();
    assert_eq!(b.count(&g).await.unwrap(), 3);
    // A partial batch: price is left out, so stored rows keep theirs and new rows take the default.
    b.upsert(&g, batch(&["a", "d"], &[Some("A2"), Some("D")], None)).await.unwrap();
    let req = ScanRequest {
        columns: vec!["sku".into(), "price".into()],
        ids: Some(Arc::new(vec!["a".into(), "d".into(), "zz".into()])),
        ..Default::default()
    };
    let mut got = cells(&b.scan(&g, &req).await.unwrap());
    got.sort();
    assert_eq!(got, rows(&[&["a", "A2", "1.0"], &["d", "D", "1.5"]]), "{}", b.info().kind);
    // A unique clash is an error and changes nothing.
    let clash = b.upsert(&g, batch(&["e"], &[Some("B")], Some(&[Some(9.0)]))).await.unwrap_err().to_string();
    assert!(clash.contains("unique"), "{clash}");
    assert_eq!(b.count(&g).await.unwrap(), 4);
    let gone = b.delete(&g, &["b".into(), "nope".into()]).await.unwrap();
    assert_eq!(gone, vec!["b".to_string()]);
    assert!(b.delete(&g, &["b".into()]).await.unwrap().is_empty());
    b.drop_group(&g).await.unwrap();
}

#[tokio::test]
async fn sqlite_and_inmem_keep_the_backend_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/b.sqlite");
    contract(Arc::new(SqliteBackend::open("b", path.to_str().unwrap()).unwrap())).await;
    assert!(path.exists(), "a real SQLite file");
    contract(Arc::new(SqliteBackend::open("b", ":memory:").unwrap())).await;
    contract(Arc::new(InmemBackend::new("b"))).await;
}

/// The same contract for the two other backend types, built by the backend
/// registry from their JSON configuration as a workspace builds them: Lance on
/// a real dataset folder, Postgres on a schema of its own on the test server.
#[tokio::test]
async fn lance_and_postgres_keep_the_backend_contract() {
    use heavenbase::providers::{BackendContext, BackendRegistry};
    let h = crate::common::TestHome::new();
    let registry = BackendRegistry::standard();
    let cx = BackendContext { ws_id: "contract".into(), ws_folder: h.dir.path().into(), home: h.dir.path().into() };
    let config = |v: serde_json::Value| v.as_object().cloned().unwrap();
    let lance = registry.create("lancedb", "b", &config(json!({"uri": "file://{ws_folder}/lance"})), &cx).unwrap();
    contract(lance).await;
    assert!(h.dir.path().join("lance").exists(), "a real Lance folder");
    if crate::common::pg_url().is_some() {
        let pg = registry.create("pg", "b", &config(h.postgres("contract").await), &cx).unwrap();
        contract(pg).await;
        crate::common::drop_pg_schemas(&[h.pg_schema("contract")]).await;
    }
}

#[tokio::test]
async fn group_table_pushes_filters_and_limit_into_sqlite() {
    let b: Arc<dyn Backend> = Arc::new(SqliteBackend::open("b", ":memory:").unwrap());
    let g = group();
    b.ensure_group(&g).await.unwrap();
    b.upsert(&g, batch(&["a", "b", "c"], &[Some("A"), Some("B"), Some("C")], Some(&[Some(1.0), Some(2.0), Some(3.0)])))
        .await
        .unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("item", Arc::new(GroupTable::new(b, g))).unwrap();
    let got = ctx.sql("SELECT sku FROM item WHERE price >= 2 ORDER BY sku").await.unwrap().collect().await.unwrap();
    assert_eq!(cells(&got), rows(&[&["B"], &["C"]]));
    let plan = ctx.sql("EXPLAIN SELECT sku FROM item WHERE price >= 2 LIMIT 1").await.unwrap().collect().await.unwrap();
    let text = cells(&plan).into_iter().map(|r| r.join(" ")).collect::<Vec<_>>().join("\n");
    assert!(text.contains("WHERE \"price\" >= ?1 LIMIT 1"), "{text}");
}

/// Writes are statements of many rows that run `INSERT OR ROLLBACK` (no
/// statement journal): a clash in any row of any statement still undoes the
/// whole write, and the backend goes on taking writes. Bulk writes leave their
/// WAL checkpoint to a thread of their own: it still happens.
#[tokio::test]
async fn sqlite_bulk_writes_are_all_or_nothing_and_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.sqlite");
    let file = SqliteBackend::open("b", path.to_str().unwrap()).unwrap();
    let memory = SqliteBackend::open("b", ":memory:").unwrap();
    for (b, file) in [(Arc::new(file) as Arc<dyn Backend>, Some(&path)), (Arc::new(memory), None)] {
        let g = group();
        b.ensure_group(&g).await.unwrap();
        b.upsert(&g, batch(&["a"], &[Some("A")], Some(&[Some(1.0)]))).await.unwrap();
        // 20,000 rows (a bulk write, several statements of 64 rows); the one
        // clashing with the stored "A" sits in the middle of a statement.
        let n = 20_000;
        let ids: Vec<String> = (0..n).map(|i| format!("id{i:05}")).collect();
        let mut skus: Vec<String> = (0..n).map(|i| format!("S{i}")).collect();
        skus[10_030] = "A".into();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let sku_refs: Vec<Option<&str>> = skus.iter().map(|s| Some(s.as_str())).collect();
        let clash = b.upsert(&g, batch(&id_refs, &sku_refs, None)).await.unwrap_err().to_string();
        assert!(clash.contains("unique"), "{clash}");
        assert_eq!(b.count(&g).await.unwrap(), 1, "{}: nothing of the failed write is kept", b.describe());
        skus[10_030] = "S10030".into();
        let sku_refs: Vec<Option<&str>> = skus.iter().map(|s| Some(s.as_str())).collect();
        b.upsert(&g, batch(&id_refs, &sku_refs, None)).await.unwrap();
        assert_eq!(b.count(&g).await.unwrap(), n + 1);
        let req = ScanRequest {
            columns: vec!["sku".into(), "price".into()],
            ids: Some(Arc::new(vec!["id10030".into(), "id19999".into()])),
            ..Default::default()
        };
        let mut got = cells(&b.scan(&g, &req).await.unwrap());
        got.sort();
        assert_eq!(got, rows(&[&["id10030", "S10030", "1.5"], &["id19999", "S19999", "1.5"]]));
        // The bulk write's pages reach the database file itself, not only its
        // WAL, while the backend is open (closing it would checkpoint anyway).
        if let Some(path) = file {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::fs::metadata(path).unwrap().len() < 512 * 1024 {
                assert!(std::time::Instant::now() < deadline, "the WAL was not checkpointed after a bulk write");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        // A small write after the bulk one takes SQLite's own checkpointing again.
        b.upsert(&g, batch(&["z"], &[Some("Z")], Some(&[Some(2.0)]))).await.unwrap();
        assert_eq!(b.count(&g).await.unwrap(), n + 2);
    }
}
