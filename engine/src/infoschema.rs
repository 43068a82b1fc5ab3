//! `information_schema` as Postgres shows it.
//!
//! DataFusion builds `information_schema` from every table's Arrow schema:
//! `columns` lists a SQL table's system columns (object_id, name) beside its
//! declared ones, numbers columns from 0, and names Arrow types (`Utf8`,
//! `Int64`); `views` lists every table, views or not. The workspace serves its
//! own `information_schema` schema instead (DataFusion's built-in one is
//! turned off in the session config), the same tables over the same catalog
//! list with two of them corrected:
//!
//! - `columns`: an entity's columns are the ones its `SELECT *` returns,
//!   numbered from 1 in that order, with the Postgres type its values are sent
//!   with (`character varying` with its length, `bigint`, `double precision`,
//!   `timestamp with time zone`, `json`, `ARRAY`, …), its nullability and its
//!   default as the definition has them; other relations (views) keep
//!   DataFusion's rows, numbered from 1.
//! - `views`: only views.
//! - `tables`: with Postgres' further columns (`is_insertable_into`, `is_typed`,
//!   …; catalog loaders such as sqlsmith's read them): an entity's table is
//!   insertable, a system table, a view or a catalog table is not.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder, UInt64Builder};
use datafusion::arrow::datatypes::DataType::Utf8;
use datafusion::arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use heavenbase_catalog::{EntityDef, LogicalType};

use crate::workspace::Inner;

/// The workspace's `information_schema` (module doc).
///
/// It holds the catalog list it describes weakly: the list holds this schema.
#[derive(Debug)]
pub(crate) struct InformationSchema {
    catalogs: Weak<dyn CatalogProviderList>,
    ws: Weak<Inner>,
}

impl InformationSchema {
    pub(crate) fn new(catalogs: &Arc<dyn CatalogProviderList>, ws: Weak<Inner>) -> Self {
        InformationSchema { catalogs: Arc::downgrade(catalogs), ws }
    }

    fn inner(&self) -> Option<InformationSchemaProvider> {
        self.catalogs.upgrade().map(InformationSchemaProvider::new)
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner().map(|i| i.table_names()).unwrap_or_default()
    }
    fn table_exist(&self, name: &str) -> bool {
        self.inner().is_some_and(|i| i.table_exist(name))
    }
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(inner) = self.inner() else { return Ok(None) };
        let Some(table) = inner.table(name).await? else { return Ok(None) };
        let listing = match name {
            "columns" => Listing::Columns,
            "views" => Listing::Views,
            "tables" => Listing::Tables,
            _ => return Ok(Some(table)),
        };
        let mut fields: Vec<_> = table.schema().fields().iter().cloned().collect();
        if let Listing::Tables = listing {
            fields.extend(
                TABLES_MORE_COLUMNS.iter().map(|name| Arc::new(datafusion::arrow::datatypes::Field::new(*name, Utf8, true))),
            );
        }
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        Ok(Some(Arc::new(CorrectedTable { inner: table, listing, schema, ws: self.ws.clone() })))
    }
}

/// The columns of Postgres' `information_schema.tables` after the four
/// DataFusion lists.
const TABLES_MORE_COLUMNS: [&str; 8] = [
    "self_referencing_column_name",
    "reference_generation",
    "user_defined_type_catalog",
    "user_defined_type_schema",
    "user_defined_type_name",
    "is_insertable_into",
    "is_typed",
    "commit_action",
];

#[derive(Debug, Clone, Copy)]
enum Listing {
    Columns,
    Views,
    Tables,
}

#[derive(Debug)]
struct CorrectedTable {
    inner: Arc<dyn TableProvider>,
    listing: Listing,
    /// The inner table's columns, and any added.
    schema: SchemaRef,
    ws: Weak<Inner>,
}

#[async_trait]
impl TableProvider for CorrectedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let corrected = match self.listing {
            Listing::Columns => {
                let defs = self.entity_defs();
                batches.iter().map(|b| columns(b, &defs)).collect::<Result<Vec<_>>>()?
            }
            Listing::Views => {
                let views: Vec<String> =
                    self.ws.upgrade().map(|ws| ws.views.read().keys().cloned().collect()).unwrap_or_default();
                batches.iter().map(|b| only_views(b, &views)).collect::<Result<Vec<_>>>()?
            }
            Listing::Tables => {
                let defs = self.entity_defs();
                batches.iter().map(|b| tables(b, &self.schema, &defs)).collect::<Result<Vec<_>>>()?
            }
        };
        Ok(MemorySourceConfig::try_new_exec(&[corrected], self.schema(), projection.cloned())?)
    }
}

impl CorrectedTable {
    /// Entity definitions by table name, in the default schema.
    fn entity_defs(&self) -> std::collections::HashMap<String, EntityDef> {
        let Some(ws) = self.ws.upgrade() else { return Default::default() };
        ws.entities.read().values().map(|rt| (rt.def.table_name(), rt.def.clone())).collect()
    }
}

fn text(batch: &RecordBatch, name: &str) -> Result<datafusion::arrow::array::StringArray> {
    let c = batch.column(batch.schema().index_of(name)?);
    Ok(datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)?.as_string::<i32>().clone())
}

fn only_views(batch: &RecordBatch, views: &[String]) -> Result<RecordBatch> {
    let (schemas, names) = (text(batch, "table_schema")?, text(batch, "table_name")?);
    let keep: datafusion::arrow::array::BooleanArray =
        (0..batch.num_rows()).map(|i| Some(schemas.value(i) == "public" && views.iter().any(|v| v == names.value(i)))).collect();
    Ok(datafusion::arrow::compute::filter_record_batch(batch, &keep)?)
}

/// The `tables` rows of `batch` with Postgres' further columns (module doc).
fn tables(batch: &RecordBatch, schema: &SchemaRef, defs: &std::collections::HashMap<String, EntityDef>) -> Result<RecordBatch> {
    let (schemas, names) = (text(batch, "table_schema")?, text(batch, "table_name")?);
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for name in TABLES_MORE_COLUMNS {
        let values: datafusion::arrow::array::StringArray = match name {
            "is_insertable_into" => (0..n)
                .map(|i| {
                    let def = (schemas.value(i) == "public").then(|| defs.get(names.value(i))).flatten();
                    let writable = def.is_some_and(|d| !heavenbase_catalog::system::is_system(&d.entity_id));
                    Some(if writable { "YES" } else { "NO" })
                })
                .collect(),
            "is_typed" => (0..n).map(|_| Some("NO")).collect(),
            _ => (0..n).map(|_| None::<&str>).collect(),
        };
        columns.push(Arc::new(values));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The `columns` rows of `batch`, corrected (module doc).
fn columns(batch: &RecordBatch, defs: &std::collections::HashMap<String, EntityDef>) -> Result<RecordBatch> {
    let schema = batch.schema();
    let (schemas, tables, names) = (text(batch, "table_schema")?, text(batch, "table_name")?, text(batch, "column_name")?);
    let n = batch.num_rows();
    let mut keep = Vec::with_capacity(n);
    let mut position = UInt64Builder::with_capacity(n);
    let mut default = StringBuilder::new();
    let mut nullable = StringBuilder::new();
    let mut data_type = StringBuilder::new();
    let mut max_length = UInt64Builder::with_capacity(n);
    let ordinal = batch.column(schema.index_of("ordinal_position")?).as_primitive::<UInt64Type>().clone();
    let old_default = text(batch, "column_default")?;
    let old_nullable = text(batch, "is_nullable")?;
    let old_type = text(batch, "data_type")?;
    let old_length = batch.column(schema.index_of("character_maximum_length")?).as_primitive::<UInt64Type>().clone();
    for i in 0..n {
        let def = (schemas.value(i) == "public").then(|| defs.get(tables.value(i))).flatten();
        let Some(def) = def else {
            keep.push(true);
            position.append_value(ordinal.value(i) + 1);
            default.append_option(old_default.is_valid(i).then(|| old_default.value(i)));
            nullable.append_value(old_nullable.value(i));
            data_type.append_value(old_type.value(i));
            max_length.append_option(old_length.is_valid(i).then(|| old_length.value(i)));
            continue;
        };
        let Some(at) = def.star_fields().position(|f| f.name == names.value(i)) else {
            // A system column: filtered out below; its cells only keep the columns aligned.
            keep.push(false);
            position.append_value(0);
            default.append_null();
            nullable.append_value("");
            data_type.append_value("");
            max_length.append_null();
            continue;
        };
        let f = def.get(names.value(i)).expect("a star field is a field");
        keep.push(true);
        position.append_value(at as u64 + 1);
        default.append_option(crate::render::default_expression(f));
        nullable.append_value(if f.required || def.id_source.key().is_some_and(|k| k.contains(&f.name)) { "NO" } else { "YES" });
        let (ty, length) = information_schema_type(&f.ty);
        data_type.append_value(&ty);
        max_length.append_option(length);
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let replace = |columns: &mut Vec<ArrayRef>, name: &str, array: ArrayRef| -> Result<()> {
        columns[schema.index_of(name)?] = array;
        Ok(())
    };
    replace(&mut columns, "ordinal_position", Arc::new(position.finish()))?;
    replace(&mut columns, "column_default", Arc::new(default.finish()))?;
    replace(&mut columns, "is_nullable", Arc::new(nullable.finish()))?;
    replace(&mut columns, "data_type", Arc::new(data_type.finish()))?;
    replace(&mut columns, "character_maximum_length", Arc::new(max_length.finish()))?;
    let corrected = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(datafusion::arrow::compute::filter_record_batch(&corrected, &keep.into())?)
}

/// The `data_type` Postgres' information_schema gives the type a field's
/// values are sent with, and its declared length for text.
fn information_schema_type(ty: &LogicalType) -> (String, Option<u64>) {
    // Json fields are sent as `json` (their text as stored), not `jsonb`.
    if *ty == LogicalType::Json {
        return ("json".into(), None);
    }
    let pg = ty.pg_type();
    if let Some(length) = pg.strip_prefix("varchar(").and_then(|l| l.strip_suffix(')')) {
        return ("character varying".into(), length.parse().ok());
    }
    if pg.ends_with("[]") {
        return ("ARRAY".into(), None);
    }
    let name = match pg.as_str() {
        "int8" => "bigint",
        "float8" => "double precision",
        "bool" => "boolean",
        "timestamptz" => "timestamp with time zone",
        other => other, // text, date, bytea, jsonb
    };
    (name.into(), None)
}
