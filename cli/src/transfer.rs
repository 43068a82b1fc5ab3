//! `hb import` and `hb export`: files in and out of entities, in batches.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use heavenbase::{EntityDef, FieldDef, LogicalType, Row, Workspace, WriteMode};
use serde_json::Value as Json;

use crate::progress::Progress;
use crate::{Failure, user_error};

/// Rows per write of JSON rows (each parsed and checked as a JSON object).
const BATCH: usize = 10_000;
/// Rows per write of a file read as Arrow (CSV, Parquet): the file is in
/// memory already, and each write is one transaction per backend. With keys
/// spread over the whole table, every commit rewrites most of its B-tree pages
/// into SQLite's WAL (and checkpoints copy them back), so fewer, larger writes
/// cut the I/O per row.
const ARROW_BATCH: usize = 100_000;

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_lowercase()
}

/// Rows of a file, as (rows, Arrow schema when the format has one).
async fn read(path: &Path) -> Result<(Vec<RecordBatch>, Option<Schema>), Failure> {
    let ctx = SessionContext::new();
    let p = path.to_str().ok_or_else(|| user_error("file path is not UTF-8"))?;
    let df = match extension(path).as_str() {
        "csv" => ctx.read_csv(p, CsvReadOptions::new()).await,
        "parquet" => ctx.read_parquet(p, ParquetReadOptions::default()).await,
        "ndjson" | "jsonl" => {
            let ext = format!(".{}", extension(path));
            ctx.read_json(p, JsonReadOptions { file_extension: &ext, ..Default::default() }).await
        }
        other => {
            return Err(user_error(format!("{}: unsupported format '{other}' (csv, parquet, json, ndjson)", path.display())));
        }
    }
    .map_err(|e| user_error(format!("{}: {e}", path.display())))?;
    let schema = df.schema().as_arrow().clone();
    let batches = df.collect().await.map_err(|e| user_error(format!("{}: {e}", path.display())))?;
    Ok((batches, Some(schema)))
}

/// Logical types for a file's columns (strings become LongText, as the reference infers).
fn infer(schema: &Schema) -> Vec<(String, LogicalType)> {
    schema.fields().iter().map(|f| (f.name().clone(), LogicalType::from_arrow(f.data_type()))).collect()
}

pub async fn import(
    ws: &Workspace,
    path: &Path,
    entity: &str,
    name_col: Option<&str>,
    id_col: Option<&str>,
) -> Result<usize, Failure> {
    let rename = |c: &str| -> String {
        if Some(c) == name_col {
            "name".into()
        } else if Some(c) == id_col {
            "object_id".into()
        } else {
            c.to_string()
        }
    };
    if extension(path) == "json" {
        return import_json(ws, path, entity, &rename).await;
    }
    // Files with an Arrow form go to the write path as Arrow batches: their
    // columns are checked and coerced column by column, never as JSON rows.
    let (batches, schema) = read(path).await?;
    let schema = schema.expect("file schema");
    let columns: Vec<(String, LogicalType)> = infer(&schema).into_iter().map(|(n, t)| (rename(&n), t)).collect();
    ensure_entity(ws, entity, &columns).await?;
    let renamed: Vec<Field> =
        schema.fields().iter().zip(&columns).map(|(f, (name, _))| f.as_ref().clone().with_name(name)).collect();
    let renamed = Arc::new(Schema::new(renamed));
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut progress = Progress::new(format!("import {entity}"), total);
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let mut batches = batches.into_iter().peekable();
    while let Some(b) = batches.next() {
        pending_rows += b.num_rows();
        pending.push(RecordBatch::try_new(renamed.clone(), b.columns().to_vec()).map_err(|e| user_error(e.to_string()))?);
        // ARROW_BATCH rows per write: each write is one round of field-group
        // writes and Catalog cards.
        if pending_rows >= ARROW_BATCH || batches.peek().is_none() {
            let batch = concat_batches(&renamed, &pending).map_err(|e| user_error(e.to_string()))?;
            pending.clear();
            pending_rows = 0;
            let n = batch.num_rows();
            ws.write_batch(entity, batch, WriteMode::Upsert).await?;
            progress.advance(n);
        }
    }
    progress.finish();
    Ok(total)
}

/// A JSON array of objects: JSON rows, through the JSON adapter of the write path.
async fn import_json(ws: &Workspace, path: &Path, entity: &str, rename: &dyn Fn(&str) -> String) -> Result<usize, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user_error(format!("{}: {e}", path.display())))?;
    let doc: Json = serde_json::from_str(&text).map_err(|e| user_error(format!("{}: {e}", path.display())))?;
    let items = doc.as_array().ok_or_else(|| user_error(format!("{}: expected a JSON array of objects", path.display())))?;
    let rows: Vec<Row> = items
        .iter()
        .map(|i| i.as_object().map(|o| o.iter().map(|(k, v)| (rename(k), v.clone())).collect()))
        .collect::<Option<_>>()
        .ok_or_else(|| user_error(format!("{}: every item must be an object", path.display())))?;
    let mut columns: Vec<(String, LogicalType)> = Vec::new();
    for r in &rows {
        for (k, v) in r {
            if !columns.iter().any(|(c, _)| c == k) {
                let ty = match v {
                    Json::Bool(_) => LogicalType::Boolean,
                    Json::Number(n) if n.is_i64() => LogicalType::Integer,
                    Json::Number(_) => LogicalType::Float,
                    Json::Array(_) => LogicalType::Array { item: None },
                    Json::Object(_) => LogicalType::Json,
                    _ => LogicalType::long_text(),
                };
                columns.push((k.clone(), ty));
            }
        }
    }
    ensure_entity(ws, entity, &columns).await?;
    let total = rows.len();
    let mut progress = Progress::new(format!("import {entity}"), total);
    let mut rows = rows.into_iter();
    loop {
        let chunk: Vec<Row> = rows.by_ref().take(BATCH).collect();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        ws.upsert_many(entity, chunk).await?;
        progress.advance(n);
    }
    progress.finish();
    Ok(total)
}

/// Register the entity from the file's columns when it does not exist.
async fn ensure_entity(ws: &Workspace, entity: &str, columns: &[(String, LogicalType)]) -> Result<(), Failure> {
    if ws.entity(entity).is_ok() {
        return Ok(());
    }
    let mut def = EntityDef::new(entity);
    for (name, ty) in columns {
        if name == "object_id" {
            continue;
        }
        let ty = if name == "name" { LogicalType::short_text() } else { ty.clone() };
        // Every string column is inferred LongText: indexing them all for
        // search would cost memory and time nobody asked for. Define the
        // entity first to choose what is searchable; search() still reads
        // these columns, exactly.
        let indexed = if ty.is_text() { Some(false) } else { None };
        def.fields.push(FieldDef { search: indexed, ..FieldDef::new(name, ty) });
    }
    ws.register(def, false).await?;
    eprintln!("created entity '{entity}' from the file's columns (its text is not indexed for search)");
    Ok(())
}

pub async fn export(ws: &Workspace, entity: &str, path: &Path) -> Result<usize, Failure> {
    let def = ws.entity(entity)?;
    let batches = ws.sql(&format!("SELECT * FROM \"{}\" ORDER BY object_id", def.table_name())).await?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    let file = std::fs::File::create(path).map_err(|e| user_error(format!("{}: {e}", path.display())))?;
    let err = |e: String| user_error(format!("{}: {e}", path.display()));
    let mut progress = Progress::new(format!("export {entity}"), rows);
    match extension(path).as_str() {
        "csv" => {
            let mut w = datafusion::arrow::csv::Writer::new(file);
            for b in &batches {
                w.write(b).map_err(|e| err(e.to_string()))?;
                progress.advance(b.num_rows());
            }
        }
        "json" => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(file);
            for b in &batches {
                w.write(b).map_err(|e| err(e.to_string()))?;
                progress.advance(b.num_rows());
            }
            w.finish().map_err(|e| err(e.to_string()))?;
        }
        "ndjson" | "jsonl" => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(file);
            for b in &batches {
                w.write(b).map_err(|e| err(e.to_string()))?;
                progress.advance(b.num_rows());
            }
            w.finish().map_err(|e| err(e.to_string()))?;
        }
        "parquet" => {
            let schema = batches.first().map(|b| b.schema()).ok_or_else(|| err("nothing to export".into()))?;
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(|e| err(e.to_string()))?;
            for b in &batches {
                w.write(b).map_err(|e| err(e.to_string()))?;
                progress.advance(b.num_rows());
            }
            w.close().map_err(|e| err(e.to_string()))?;
        }
        other => return Err(err(format!("unsupported format '{other}' (csv, parquet, json, ndjson)"))),
    }
    progress.finish();
    Ok(rows)
}
