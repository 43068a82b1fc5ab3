//! Descriptions of entities and fields, as Postgres clients read them: the
//! `pg_description` table (DBeaver, Metabase and SQLAlchemy join it) and the
//! `obj_description` / `col_description` functions (psql's `\d+`, `\dt+`).
//!
//! datafusion-pg-catalog ships pg_description as a fixed table and assigns table
//! OIDs itself as it lists pg_class. So the pg_catalog schema is wrapped: scans
//! of pg_class, pg_attribute and pg_description first read the current OIDs of
//! the workspace's entities (from the catalog's own pg_namespace and pg_class),
//! and pg_description adds one row per described entity (objsubid 0) and field
//! (objsubid = its column number) to the fixed rows. pg_database and
//! `current_database()` name the workspace, as the client's database name does.
//! pg_indexes lists the workspace's indexes (the fixed catalog has no such view).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{Expr, SessionContext};
use heavenbase::Workspace;
use parking_lot::RwLock;

/// The view of indexes tools and people query by name (`SELECT * FROM pg_indexes`).
const PG_INDEXES: &str = "pg_indexes";

/// pg_class's own OID: the `classoid` of a table or column description.
const PG_CLASS_OID: i64 = 1259;

/// What is described, by the OIDs pg_catalog currently gives the entities.
pub(crate) struct Descriptions {
    ws: Workspace,
    /// The schema the entities live in (DataFusion's default schema).
    schema: String,
    inner: Arc<dyn SchemaProvider>,
    /// The DataFusion catalog the entities are in, listed in pg_database under
    /// the workspace id.
    catalog: String,
    /// Table OID → entity id, as of the last pg_class listing.
    entities: RwLock<HashMap<i64, String>>,
}

impl std::fmt::Debug for Descriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Descriptions({})", self.ws.id())
    }
}

/// Replace the session's pg_catalog schema by one that describes the
/// workspace's entities, and register the description functions.
pub(crate) fn register(ctx: &SessionContext, ws: &Workspace) -> Result<()> {
    let options = ctx.state().config().options().catalog.clone();
    let catalog = ctx.catalog(&options.default_catalog).expect("the default catalog exists");
    let Some(inner) = catalog.schema("pg_catalog") else { return Ok(()) };
    if inner.downcast_ref::<DescribedPgCatalog>().is_some() {
        return Ok(());
    }
    let descriptions = Arc::new(Descriptions {
        ws: ws.clone(),
        schema: options.default_schema.clone(),
        catalog: options.default_catalog.clone(),
        inner: inner.clone(),
        entities: RwLock::new(HashMap::new()),
    });
    catalog.register_schema("pg_catalog", Arc::new(DescribedPgCatalog { inner, descriptions: descriptions.clone() }))?;
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("obj_description", descriptions.clone())));
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("col_description", descriptions.clone())));
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("shobj_description", descriptions)));
    // The database a client connected to is the workspace, whatever the
    // catalog inside DataFusion is called.
    let id = ws.id().to_string();
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "current_database",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(id.clone()))))),
    ));
    Ok(())
}

async fn read_all(table: &Arc<dyn TableProvider>, state: &dyn Session) -> Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

fn int_column(batch: &RecordBatch, name: &str) -> Result<Int64Array> {
    let column = batch.column(batch.schema().index_of(name)?);
    Ok(cast(column, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

fn text_column(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let column = batch.column(batch.schema().index_of(name)?);
    Ok(cast(column, &DataType::Utf8)?.as_string::<i32>().clone())
}

impl Descriptions {
    /// pg_views: the workspace's views (the fixed catalog's table is empty).
    fn views(&self, schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
        let views = self.ws.views();
        let column = |values: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let n = views.len();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                column(vec![self.schema.clone(); n]),
                column(views.iter().map(|(name, _)| name.clone()).collect()),
                column(vec!["postgres".to_string(); n]),
                column(views.iter().map(|(_, query)| format!(" {query};")).collect()),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }

    /// pg_indexes: every index of the workspace's tables, named and defined
    /// as Postgres lists them (`heavenbase::Workspace::index_listing`).
    fn indexes(&self) -> Result<Arc<dyn TableProvider>> {
        let listing = self.ws.index_listing();
        let schema = Arc::new(Schema::new(
            ["schemaname", "tablename", "indexname", "tablespace", "indexdef"]
                .map(|name| Field::new(name, DataType::Utf8, name == "tablespace"))
                .to_vec(),
        ));
        let n = listing.len();
        let column = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                column(vec![Some(self.schema.clone()); n]),
                column(listing.iter().map(|ix| Some(ix.table.clone())).collect()),
                column(listing.iter().map(|ix| Some(ix.name.clone())).collect()),
                column(vec![None; n]),
                column(listing.iter().map(|ix| Some(ix.definition(&self.schema))).collect()),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }

    /// Re-read which OID each entity has now (tables come and go).
    async fn refresh(&self, state: &dyn Session) -> Result<()> {
        let (Some(namespaces), Some(classes)) = (self.inner.table("pg_namespace").await?, self.inner.table("pg_class").await?)
        else {
            return Ok(());
        };
        let mut schema_oids = Vec::new();
        for batch in read_all(&namespaces, state).await? {
            let (oid, name) = (int_column(&batch, "oid")?, text_column(&batch, "nspname")?);
            schema_oids.extend((0..batch.num_rows()).filter(|&i| name.value(i) == self.schema).map(|i| oid.value(i)));
        }
        let known = self.ws.entities();
        let mut entities = HashMap::new();
        for batch in read_all(&classes, state).await? {
            let (oid, name, namespace) =
                (int_column(&batch, "oid")?, text_column(&batch, "relname")?, int_column(&batch, "relnamespace")?);
            for i in 0..batch.num_rows() {
                if schema_oids.contains(&namespace.value(i)) && known.iter().any(|e| e == name.value(i)) {
                    entities.insert(oid.value(i), name.value(i).to_string());
                }
            }
        }
        *self.entities.write() = entities;
        Ok(())
    }

    /// pg_attribute rows with the column numbers of [`column_numbers`] for
    /// the entities with system columns.
    fn numbered_columns(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let relids = cast(batch.column(batch.schema().index_of("attrelid")?), &DataType::Int64)?;
        let relids = relids.as_primitive::<Int64Type>();
        let names = text_column(batch, "attname")?;
        let index = batch.schema().index_of("attnum")?;
        let numbers = cast(batch.column(index), &DataType::Int64)?;
        let numbers = numbers.as_primitive::<Int64Type>();
        let entities = self.entities.read().clone();
        let mut shaped: HashMap<i64, Option<heavenbase::EntityDef>> = HashMap::new();
        let renumbered: Int64Array = (0..batch.num_rows())
            .map(|i| {
                let def = shaped.entry(relids.value(i)).or_insert_with(|| {
                    let entity = entities.get(&relids.value(i))?;
                    self.ws.entity(entity).ok().filter(heavenbase::EntityDef::has_system_columns)
                });
                let number = def.as_ref().and_then(|def| {
                    let at = def.fields.iter().position(|f| f.name == names.value(i))?;
                    column_numbers(def).get(at).copied()
                });
                Some(number.unwrap_or(numbers.value(i)))
            })
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[index] = cast(&(Arc::new(renumbered) as ArrayRef), batch.schema().field(index).data_type())?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// pg_database rows with the entities' catalog renamed to the workspace id.
    fn named_databases(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let index = batch.schema().index_of("datname")?;
        let names = text_column(batch, "datname")?;
        let renamed: StringArray = names.iter().map(|n| n.map(|n| if n == self.catalog { self.ws.id() } else { n })).collect();
        let mut columns = batch.columns().to_vec();
        columns[index] = cast(&(Arc::new(renamed) as ArrayRef), batch.schema().field(index).data_type())?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// The description of a table (`column` 0) or of its column number `column`.
    fn describe(&self, oid: i64, column: i64) -> Option<String> {
        let entity = self.entities.read().get(&oid)?.clone();
        let def = self.ws.entity(&entity).ok()?;
        let text = match column {
            0 => def.desc,
            n => def.fields.iter().zip(column_numbers(&def)).find(|(_, k)| *k == n)?.0.desc.clone(),
        };
        (!text.is_empty()).then_some(text)
    }

    /// (objoid, objsubid, description) for every described entity and field.
    fn rows(&self) -> Vec<(i64, i64, String)> {
        let entities = self.entities.read().clone();
        let mut rows = Vec::new();
        for (oid, entity) in entities {
            let Ok(def) = self.ws.entity(&entity) else { continue };
            if !def.desc.is_empty() {
                rows.push((oid, 0, def.desc.clone()));
            }
            for (field, number) in def.fields.iter().zip(column_numbers(&def)) {
                if !field.desc.is_empty() {
                    rows.push((oid, number, field.desc.clone()));
                }
            }
        }
        rows.sort();
        rows
    }
}

/// Each field's column number, as pg_attribute, pg_description and
/// `col_description` give it: the `SELECT *` columns 1, 2, …, and system
/// columns -1, -2, …, as Postgres numbers its own system columns below zero
/// (clients list a table's columns with `attnum > 0`).
fn column_numbers(def: &heavenbase::EntityDef) -> Vec<i64> {
    let (mut shown, mut system) = (0, 0);
    def.fields
        .iter()
        .map(|f| {
            if f.system_column {
                system -= 1;
                system
            } else {
                shown += 1;
                shown
            }
        })
        .collect()
}

/// pg_catalog, with pg_description describing the entities.
#[derive(Debug)]
struct DescribedPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    descriptions: Arc<Descriptions>,
}

#[async_trait]
impl SchemaProvider for DescribedPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push(PG_INDEXES.to_string());
        names
    }
    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(PG_INDEXES) || self.inner.table_exist(name)
    }
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case(PG_INDEXES) {
            return Ok(Some(self.descriptions.indexes()?));
        }
        let Some(table) = self.inner.table(name).await? else { return Ok(None) };
        if name.eq_ignore_ascii_case("pg_views") {
            return Ok(Some(self.descriptions.views(table.schema())?));
        }
        let kind = match name.to_ascii_lowercase().as_str() {
            "pg_class" => Listing::Classes,
            "pg_attribute" => Listing::Oids,
            "pg_description" => Listing::Descriptions,
            "pg_database" => Listing::Databases,
            _ => return Ok(Some(table)),
        };
        let mut fields: Vec<_> = table.schema().fields().iter().cloned().collect();
        if let Listing::Classes = kind {
            // psql's `\d` reads table options; nothing here has any.
            let options = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
            fields.push(Arc::new(Field::new("reloptions", options, true)));
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(Some(Arc::new(DescribingTable { inner: table, kind, schema, descriptions: self.descriptions.clone() })))
    }
}

#[derive(Debug, Clone, Copy)]
enum Listing {
    /// pg_attribute: rows that carry table OIDs a client may then ask
    /// descriptions of, numbered as [`column_numbers`] says.
    Oids,
    /// pg_class: the same, plus the columns psql reads that the fixed
    /// catalog lacks (as nulls).
    Classes,
    /// pg_description: the fixed rows and the workspace's own.
    Descriptions,
    /// pg_database, with the workspace id as the name of its database.
    Databases,
}

#[derive(Debug)]
struct DescribingTable {
    inner: Arc<dyn TableProvider>,
    kind: Listing,
    /// The inner table's columns, and any added.
    schema: SchemaRef,
    descriptions: Arc<Descriptions>,
}

#[async_trait]
impl TableProvider for DescribingTable {
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
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Everything but pg_database may be asked for an entity's OID next.
        if !matches!(self.kind, Listing::Databases) {
            self.descriptions.refresh(state).await?;
        }
        let batches = match self.kind {
            Listing::Oids if !self.descriptions.ws.has_system_columns() => {
                return self.inner.scan(state, projection, filters, limit).await;
            }
            Listing::Oids => read_all(&self.inner, state)
                .await?
                .iter()
                .map(|b| self.descriptions.numbered_columns(b))
                .collect::<Result<Vec<_>>>()?,
            Listing::Databases => read_all(&self.inner, state)
                .await?
                .iter()
                .map(|b| self.descriptions.named_databases(b))
                .collect::<Result<Vec<_>>>()?,
            Listing::Classes => read_all(&self.inner, state)
                .await?
                .iter()
                .map(|b| {
                    let mut columns = b.columns().to_vec();
                    for field in &self.schema.fields()[columns.len()..] {
                        columns.push(datafusion::arrow::array::new_null_array(field.data_type(), b.num_rows()));
                    }
                    RecordBatch::try_new(self.schema.clone(), columns)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            Listing::Descriptions => {
                let mut batches = read_all(&self.inner, state).await?;
                let rows = self.descriptions.rows();
                if !rows.is_empty() {
                    batches.push(description_batch(&self.schema, &rows)?);
                }
                batches
            }
        };
        MemTable::try_new(self.schema.clone(), vec![batches])?.scan(state, projection, filters, limit).await
    }
}

/// Rows in pg_description's own column types.
fn description_batch(schema: &SchemaRef, rows: &[(i64, i64, String)]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let values: ArrayRef = match field.name().as_str() {
                "objoid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                "classoid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| PG_CLASS_OID))),
                "objsubid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                "description" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2.as_str()))),
                _ => datafusion::arrow::array::new_null_array(field.data_type(), rows.len()),
            };
            Ok(cast(&values, field.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `obj_description(oid[, catalog])`, `col_description(oid, column)` and
/// `shobj_description(oid, catalog)` (nothing shared is described).
#[derive(Debug)]
struct DescriptionFn {
    name: &'static str,
    signature: Signature,
    descriptions: Arc<Descriptions>,
}

impl DescriptionFn {
    fn new(name: &'static str, descriptions: Arc<Descriptions>) -> Self {
        DescriptionFn { name, signature: Signature::variadic_any(Volatility::Stable), descriptions }
    }
}

impl PartialEq for DescriptionFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.descriptions, &other.descriptions)
    }
}
impl Eq for DescriptionFn {}
impl std::hash::Hash for DescriptionFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for DescriptionFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let number = |i: usize, row: usize| -> Option<i64> {
            let array = arrays.get(i)?;
            match ScalarValue::try_from_array(array, row).ok()?.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(v) => v,
                _ => None,
            }
        };
        let out: StringArray = (0..args.number_rows)
            .map(|row| match self.name {
                "col_description" => self.descriptions.describe(number(0, row)?, number(1, row)?),
                // A table's own description; other catalogs hold nothing of ours.
                "obj_description" => {
                    let catalog = arrays.get(1).and_then(|a| ScalarValue::try_from_array(a, row).ok()).map(|v| v.to_string());
                    if catalog.as_deref().is_some_and(|c| c != "pg_class") {
                        return None;
                    }
                    self.descriptions.describe(number(0, row)?, 0)
                }
                _ => None,
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
