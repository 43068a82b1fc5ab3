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
//!
//! The same indexes are in pg_class (relkind 'i', and `relhasindex` on their
//! tables), pg_index, and pg_constraint for primary keys and UNIQUE
//! constraints, with `pg_get_indexdef` and `pg_get_constraintdef` giving their
//! definitions: psql's `\d` lists a table's indexes from these, as do
//! SQLAlchemy's inspector and the GUI tools. An index's OID derives from its
//! table and name (see [`index_oid`]), so every catalog table and function
//! agrees on it without a shared counter.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{Expr, SessionContext};
use datafusion_postgres::pgwire::api::Type;
use heavenbase::Workspace;
use heavenbase::render::quote_ident;
use parking_lot::RwLock;

/// The view of indexes tools and people query by name (`SELECT * FROM pg_indexes`).
const PG_INDEXES: &str = "pg_indexes";

/// pg_class's own OID: the `classoid` of a table or column description.
const PG_CLASS_OID: i64 = 1259;

/// pg_namespace's OID: the `classoid` of a schema's description.
const PG_NAMESPACE_OID: i64 = 2615;

/// The comment initdb gives the `public` schema.
const PUBLIC_SCHEMA_COMMENT: &str = "standard public schema";

/// The OID Postgres 15 gives `information_schema`, which the fixed catalog's
/// pg_proc, pg_type and pg_constraint rows carry; pg_namespace lists the schema
/// under the OID datafusion-pg-catalog assigns it, so those rows are given that
/// one (sqlsmith names each function's schema by joining the two).
const PG15_INFORMATION_SCHEMA_OID: i64 = 13283;

/// text's type OID (pg_type): what the fixed catalog gives every column
/// whose Arrow type is text.
const TEXT_OID: i64 = 25;

/// The btree access method's OID (pg_am), which every index here reports.
const BTREE_AM_OID: i64 = 403;

/// Index OIDs are 0x4000_0000 + a 29-bit hash, constraint OIDs 0x6000_0000 + the
/// same hash: far above the OIDs datafusion-pg-catalog counts up from 16384
/// for schemas and tables, and below 2^31 (the catalog stores OIDs as int4).
const INDEX_OID_BASE: i64 = 0x4000_0000;
const CONSTRAINT_OID_BASE: i64 = 0x6000_0000;
/// pg_attrdef rows' OIDs: 0x5000_0000 + a 29-bit hash of table and column.
const ATTRDEF_OID_BASE: i64 = 0x5000_0000;
const OID_HASH_MASK: u64 = 0x1FFF_FFFF;

/// The OID an index has in pg_class, pg_index and pg_constraint.conindid:
/// FNV-1a of its table and name, the same in every session and server.
fn index_oid(table: &str, name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in table.bytes().chain([0]).chain(name.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    INDEX_OID_BASE + (hash & OID_HASH_MASK) as i64
}

/// One of the workspace's indexes as the catalog tables list it.
struct CatalogIndex {
    listing: heavenbase::IndexListing,
    oid: i64,
    /// The primary key's or UNIQUE constraint's OID, for the indexes that
    /// carry one (Postgres makes a constraint for those, not for CREATE INDEX).
    constraint: Option<(i64, &'static str)>,
    /// The indexed columns' numbers, as pg_attribute numbers them.
    columns: Vec<i64>,
}

impl CatalogIndex {
    /// `PRIMARY KEY (a, b)` / `UNIQUE (a)`, as `pg_get_constraintdef` gives it.
    fn constraint_definition(&self) -> Option<String> {
        let (_, kind) = self.constraint?;
        let keyword = if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" };
        let columns: Vec<String> = self.listing.fields.iter().map(|f| quote_ident(f)).collect();
        Some(format!("{keyword} ({})", columns.join(", ")))
    }
}

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
    /// The OID of the entities' schema, as of the last pg_namespace listing.
    namespace: RwLock<Option<i64>>,
    /// The OID pg_namespace gives information_schema, as of the last listing.
    information_schema: RwLock<Option<i64>>,
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
        namespace: RwLock::new(None),
        information_schema: RwLock::new(None),
    });
    catalog.register_schema("pg_catalog", Arc::new(DescribedPgCatalog { inner, descriptions: descriptions.clone() }))?;
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("obj_description", descriptions.clone())));
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("col_description", descriptions.clone())));
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("shobj_description", descriptions.clone())));
    // The fixed catalog's pg_get_constraintdef answers '' for every OID.
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("pg_get_constraintdef", descriptions.clone())));
    ctx.register_udf(ScalarUDF::new_from_impl(DescriptionFn::new("pg_get_indexdef", descriptions)));
    // pg_attrdef's adbin holds a default's SQL (Postgres keeps a parse tree
    // there and prints it back): pg_get_expr(adbin, relid [, pretty]) gives
    // it, where the fixed catalog's answers '' for every expression. Other
    // catalogs' expression columns (pg_index.indexprs, …) are NULL here.
    ctx.register_udf(ScalarUDF::new_from_impl(PgGetExpr::default()));
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

    /// Re-read which OID pg_namespace gives information_schema.
    async fn refresh_namespaces(&self, state: &dyn Session) -> Result<()> {
        self.namespaces(state).await.map(|_| ())
    }

    /// pg_namespace's (oid, name) rows, noting information_schema's OID.
    async fn namespaces(&self, state: &dyn Session) -> Result<Vec<(i64, String)>> {
        let Some(namespaces) = self.inner.table("pg_namespace").await? else { return Ok(Vec::new()) };
        let mut listed = Vec::new();
        for batch in read_all(&namespaces, state).await? {
            let (oid, name) = (int_column(&batch, "oid")?, text_column(&batch, "nspname")?);
            listed.extend((0..batch.num_rows()).map(|i| (oid.value(i), name.value(i).to_string())));
        }
        if let Some((oid, _)) = listed.iter().find(|(_, name)| name == "information_schema") {
            *self.information_schema.write() = Some(*oid);
        }
        if let Some((oid, _)) = listed.iter().find(|(_, name)| *name == self.schema) {
            *self.namespace.write() = Some(*oid);
        }
        Ok(listed)
    }

    /// Re-read which OID each entity has now (tables come and go).
    async fn refresh(&self, state: &dyn Session) -> Result<()> {
        let schema_oids: Vec<i64> =
            self.namespaces(state).await?.into_iter().filter(|(_, name)| *name == self.schema).map(|(oid, _)| oid).collect();
        let Some(classes) = self.inner.table("pg_class").await? else { return Ok(()) };
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
        *self.namespace.write() = schema_oids.first().copied();
        Ok(())
    }

    /// Every index of the workspace's tables, with its OIDs and column numbers.
    fn catalog_indexes(&self) -> Vec<CatalogIndex> {
        let mut shapes: HashMap<String, Option<heavenbase::EntityDef>> = HashMap::new();
        self.ws
            .index_listing()
            .into_iter()
            .map(|listing| {
                let def = shapes.entry(listing.table.clone()).or_insert_with(|| self.ws.entity(&listing.table).ok());
                let columns = listing
                    .fields
                    .iter()
                    .map(|field| {
                        let def = def.as_ref()?;
                        let at = def.fields.iter().position(|f| &f.name == field)?;
                        column_numbers(def).get(at).copied()
                    })
                    .map(|number| number.unwrap_or(0))
                    .collect();
                let oid = index_oid(&listing.table, &listing.name);
                let constraint = match listing.owner {
                    heavenbase::IndexOwner::PrimaryKey => Some("p"),
                    heavenbase::IndexOwner::UniqueConstraint => Some("u"),
                    _ => None,
                }
                .map(|kind| (oid - INDEX_OID_BASE + CONSTRAINT_OID_BASE, kind));
                CatalogIndex { listing, oid, constraint, columns }
            })
            .collect()
    }

    /// The indexes of the tables pg_class lists, with their table's OID (as of
    /// the last refresh).
    fn listed_indexes(&self) -> Vec<(CatalogIndex, i64)> {
        let tables: HashMap<String, i64> = self.entities.read().iter().map(|(oid, name)| (name.clone(), *oid)).collect();
        self.catalog_indexes().into_iter().filter_map(|ix| tables.get(&ix.listing.table).map(|&table| (ix, table))).collect()
    }

    /// pg_class rows for the indexes (relkind 'i'), in `schema`'s columns.
    fn index_classes(&self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let indexes: Vec<CatalogIndex> = self.listed_indexes().into_iter().map(|(ix, _)| ix).collect();
        let Some(namespace) = *self.namespace.read() else { return Ok(None) };
        if indexes.is_empty() {
            return Ok(None);
        }
        let n = indexes.len();
        catalog_rows(schema, n, |name| -> Option<ArrayRef> {
            Some(match name {
                "oid" | "relfilenode" => Arc::new(Int64Array::from_iter_values(indexes.iter().map(|ix| ix.oid))),
                "relname" => Arc::new(StringArray::from_iter_values(indexes.iter().map(|ix| ix.listing.name.as_str()))),
                "relnamespace" => Arc::new(Int64Array::from_value(namespace, n)),
                "relam" => Arc::new(Int64Array::from_value(BTREE_AM_OID, n)),
                "relkind" => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("i", n))),
                "relpersistence" => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("p", n))),
                "relreplident" => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("n", n))),
                "relnatts" => Arc::new(Int64Array::from_iter_values(indexes.iter().map(|ix| ix.listing.fields.len() as i64))),
                "relpages" => Arc::new(Int64Array::from_value(1, n)),
                "relispopulated" => Arc::new(BooleanArray::from(vec![true; n])),
                _ => return None,
            })
        })
        .map(Some)
    }

    /// pg_attribute rows for the indexes' columns (attrelid the index, attnum
    /// 1…n), copied from their tables' rows: psql's `\d index` lists them.
    fn index_attributes(&self, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
        let indexes = self.listed_indexes();
        let mut out = Vec::new();
        if indexes.is_empty() {
            return Ok(out);
        }
        let wanted: std::collections::HashSet<i64> = indexes.iter().map(|(_, table)| *table).collect();
        for batch in batches {
            let (relids, names) = (int_column(batch, "attrelid")?, text_column(batch, "attname")?);
            let rows: HashMap<(i64, &str), u32> = (0..batch.num_rows())
                .filter(|&i| wanted.contains(&relids.value(i)))
                .map(|i| ((relids.value(i), names.value(i)), i as u32))
                .collect();
            let (mut take, mut relid, mut number) = (Vec::new(), Vec::new(), Vec::new());
            for (ix, table) in &indexes {
                for (k, field) in ix.listing.fields.iter().enumerate() {
                    if let Some(&row) = rows.get(&(*table, field.as_str())) {
                        take.push(row);
                        relid.push(ix.oid);
                        number.push(k as i64 + 1);
                    }
                }
            }
            if take.is_empty() {
                continue;
            }
            let taken = datafusion::arrow::compute::take_record_batch(batch, &datafusion::arrow::array::UInt32Array::from(take))?;
            let mut columns = taken.columns().to_vec();
            for (name, values) in [("attrelid", relid), ("attnum", number)] {
                let at = taken.schema().index_of(name)?;
                let values: ArrayRef = Arc::new(Int64Array::from(values));
                columns[at] = cast(&values, taken.schema().field(at).data_type())?;
            }
            out.push(RecordBatch::try_new(taken.schema(), columns)?);
        }
        Ok(out)
    }

    /// pg_index rows for the indexes of tables pg_class lists.
    fn index_rows(&self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let indexes = self.listed_indexes();
        if indexes.is_empty() {
            return Ok(None);
        }
        let n = indexes.len();
        let vector = |f: &dyn Fn(&CatalogIndex) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(indexes.iter().map(|(ix, _)| f(ix))))
        };
        let flag = |f: &dyn Fn(&CatalogIndex) -> bool| -> ArrayRef {
            Arc::new(BooleanArray::from(indexes.iter().map(|(ix, _)| f(ix)).collect::<Vec<_>>()))
        };
        catalog_rows(schema, n, |name| -> Option<ArrayRef> {
            Some(match name {
                "indexrelid" => Arc::new(Int64Array::from_iter_values(indexes.iter().map(|(ix, _)| ix.oid))),
                "indrelid" => Arc::new(Int64Array::from_iter_values(indexes.iter().map(|(_, table)| *table))),
                "indnatts" | "indnkeyatts" => {
                    Arc::new(Int64Array::from_iter_values(indexes.iter().map(|(ix, _)| ix.columns.len() as i64)))
                }
                "indisunique" => flag(&|ix| ix.listing.unique),
                "indisprimary" => flag(&|ix| ix.listing.owner == heavenbase::IndexOwner::PrimaryKey),
                "indimmediate" => flag(&|ix| ix.listing.unique),
                "indisvalid" | "indisready" | "indislive" => flag(&|_| true),
                // int2vector and oidvector in their text form: "1 2".
                "indkey" => vector(&|ix| ix.columns.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")),
                "indcollation" | "indclass" | "indoption" => vector(&|ix| vec!["0"; ix.columns.len()].join(" ")),
                _ => return None,
            })
        })
        .map(Some)
    }

    /// pg_constraint rows for primary keys and UNIQUE constraints.
    fn constraint_rows(&self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let Some(namespace) = *self.namespace.read() else { return Ok(None) };
        let constraints: Vec<(CatalogIndex, i64, i64, &str)> = self
            .listed_indexes()
            .into_iter()
            .filter_map(|(ix, table)| {
                let (oid, kind) = ix.constraint?;
                Some((ix, table, oid, kind))
            })
            .collect();
        if constraints.is_empty() {
            return Ok(None);
        }
        let n = constraints.len();
        let ints = |f: &dyn Fn(&(CatalogIndex, i64, i64, &str)) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(constraints.iter().map(f)))
        };
        let texts = |f: &dyn Fn(&(CatalogIndex, i64, i64, &str)) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(constraints.iter().map(f)))
        };
        catalog_rows(schema, n, |name| -> Option<ArrayRef> {
            Some(match name {
                "oid" => ints(&|c| c.2),
                "conname" => texts(&|c| c.0.listing.name.clone()),
                "connamespace" => Arc::new(Int64Array::from_value(namespace, n)),
                "contype" => texts(&|c| c.3.to_string()),
                "convalidated" | "conislocal" | "connoinherit" => Arc::new(BooleanArray::from(vec![true; n])),
                "conrelid" => ints(&|c| c.1),
                "conindid" => ints(&|c| c.0.oid),
                "confupdtype" | "confdeltype" | "confmatchtype" => texts(&|_| " ".to_string()),
                // int2[] in Postgres' text form.
                "conkey" => texts(&|c| format!("{{{}}}", c.0.columns.iter().map(i64::to_string).collect::<Vec<_>>().join(","))),
                _ => return None,
            })
        })
        .map(Some)
    }

    /// `pg_get_indexdef(oid)` (column 0) or the name of its column `column`
    /// (from 1), for one of `indexes` (one listing serves a whole call).
    fn index_definition(&self, indexes: &[CatalogIndex], oid: i64, column: i64) -> Option<String> {
        let ix = indexes.iter().find(|ix| ix.oid == oid)?;
        match column {
            0 => Some(ix.listing.definition(&self.schema)),
            n => Some(quote_ident(ix.listing.fields.get(usize::try_from(n - 1).ok()?)?)),
        }
    }

    /// `pg_get_constraintdef(oid)` for a primary key or UNIQUE constraint of ours.
    fn constraint_definition(indexes: &[CatalogIndex], oid: i64) -> Option<String> {
        indexes.iter().find(|ix| ix.constraint.is_some_and(|(c, _)| c == oid))?.constraint_definition()
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

    /// pg_attribute rows of the entities' columns as their fields declare
    /// them (the fixed catalog derives both from the Arrow schema): a
    /// required or key field is attnotnull, with the nullability
    /// information_schema gives it; where the fixed catalog says text, the
    /// field's own type ([`catalog_type`]: json, uuid, float4[], varchar(n)
    /// with atttypmod n + 4, timestamptz, arrays) and that type's storage;
    /// a field with a default is atthasdef, its default in pg_attrdef.
    /// pg_dump writes its column types, NOT NULLs and DEFAULTs from these.
    fn declared_attributes(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let Ok(notnull_at) = schema.index_of("attnotnull") else { return Ok(batch.clone()) };
        let relids = int_column(batch, "attrelid")?;
        let names = text_column(batch, "attname")?;
        let old_notnull = batch.column(notnull_at).as_boolean().clone();
        let type_at = schema.index_of("atttypid").ok();
        let old_types = type_at.map(|_| int_column(batch, "atttypid")).transpose()?;
        let typmod_at = schema.index_of("atttypmod").ok().filter(|_| type_at.is_some());
        let old_typmods = typmod_at.map(|_| int_column(batch, "atttypmod")).transpose()?;
        let storage_at = schema.index_of("attstorage").ok().filter(|_| type_at.is_some());
        let old_storage = storage_at.map(|_| text_column(batch, "attstorage")).transpose()?;
        let hasdef_at = schema.index_of("atthasdef").ok();
        let old_hasdef = hasdef_at.and_then(|at| batch.column(at).as_boolean_opt().cloned());
        let hasdef_at = hasdef_at.filter(|_| old_hasdef.is_some());
        let mut storage = Vec::with_capacity(batch.num_rows());
        let entities = self.entities.read().clone();
        let mut defs: HashMap<i64, Option<heavenbase::EntityDef>> = HashMap::new();
        let mut notnull = Vec::with_capacity(batch.num_rows());
        let mut types = Vec::with_capacity(batch.num_rows());
        let mut typmods = Vec::with_capacity(batch.num_rows());
        let mut hasdef = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let def = defs.entry(relids.value(i)).or_insert_with(|| self.ws.entity(entities.get(&relids.value(i))?).ok());
            let field = def.as_ref().and_then(|d| Some((d, d.fields.iter().find(|f| f.name == names.value(i))?)));
            let required = field.map(|(d, f)| {
                f.required || f.name == heavenbase::catalog::OBJECT_ID || d.id_source.key().is_some_and(|k| k.contains(&f.name))
            });
            notnull.push(Some(required.unwrap_or(old_notnull.value(i))));
            let default = field.and_then(|(_, f)| heavenbase::render::default_expression(f));
            hasdef.push(Some(default.is_some() || old_hasdef.as_ref().is_some_and(|h| h.value(i))));
            if let (Some(old), Some(old_typmod)) = (&old_types, &old_typmods) {
                let declared = field.and_then(|(_, f)| catalog_type(&f.ty)).filter(|_| old.value(i) == TEXT_OID);
                types.push(Some(declared.map_or(old.value(i), |(oid, _)| oid)));
                typmods.push(Some(declared.map_or(old_typmod.value(i), |(_, typmod)| typmod)));
                // The column's storage is its type's (pg_dump writes SET
                // STORAGE for one whose storage is not).
                storage.push(Some(match declared {
                    Some((oid, _)) => type_storage(oid).to_string(),
                    None => old_storage.as_ref().map_or(String::new(), |s| s.value(i).to_string()),
                }));
            }
        }
        let mut columns = batch.columns().to_vec();
        columns[notnull_at] = Arc::new(BooleanArray::from(notnull));
        if let Some(at) = hasdef_at {
            columns[at] = Arc::new(BooleanArray::from(hasdef));
        }
        if let (Some(at), Some(typmod_at)) = (type_at, typmod_at) {
            columns[at] = cast(&(Arc::new(Int64Array::from(types)) as ArrayRef), schema.field(at).data_type())?;
            let typmods = Arc::new(Int64Array::from(typmods)) as ArrayRef;
            columns[typmod_at] = cast(&typmods, schema.field(typmod_at).data_type())?;
        }
        if let Some(at) = storage_at {
            columns[at] = cast(&(Arc::new(StringArray::from(storage)) as ArrayRef), schema.field(at).data_type())?;
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// pg_attrdef: a row per entity column with a default (literal or
    /// computed), `adbin` its expression as SQL, which `pg_get_expr` gives
    /// back (Postgres keeps a parse tree there and prints it). Serial and
    /// identity columns have none: their counter is no sequence a dump could
    /// recreate (docs/sql.md).
    fn default_rows(&self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let entities = self.entities.read().clone();
        let mut rows: Vec<(i64, i64, String)> = Vec::new();
        for (oid, name) in &entities {
            let Ok(def) = self.ws.entity(name) else { continue };
            for (f, number) in def.fields.iter().zip(column_numbers(&def)) {
                if let Some(default) = heavenbase::render::default_expression(f) {
                    rows.push((*oid, number, default));
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        rows.sort();
        let n = rows.len();
        catalog_rows(schema, n, |name| -> Option<ArrayRef> {
            Some(match name {
                "oid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|(oid, number, _)| attrdef_oid(*oid, *number)))),
                "adrelid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|(oid, _, _)| *oid))),
                "adnum" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, number, _)| *number))),
                "adbin" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, _, text)| text.as_str()))),
                _ => return None,
            })
        })
        .map(Some)
    }

    /// pg_class rows in `schema` (the added columns null), `relhasindex` set
    /// for the entities' tables that have indexes.
    fn classes_with_indexes(
        &self,
        batch: &RecordBatch,
        schema: &SchemaRef,
        indexed: &std::collections::HashSet<String>,
    ) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for field in &schema.fields()[columns.len()..] {
            columns.push(datafusion::arrow::array::new_null_array(field.data_type(), batch.num_rows()));
        }
        let oids = int_column(batch, "oid")?;
        let entities = self.entities.read();
        let at = batch.schema().index_of("relhasindex")?;
        let old = columns[at].as_boolean().clone();
        let has_index: BooleanArray = (0..batch.num_rows())
            .map(|i| Some(old.value(i) || entities.get(&oids.value(i)).is_some_and(|table| indexed.contains(table))))
            .collect();
        columns[at] = Arc::new(has_index);
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }

    /// `batch` with Postgres' information_schema OID in `column` replaced by
    /// the one pg_namespace lists ([`PG15_INFORMATION_SCHEMA_OID`]).
    fn renumbered_namespaces(&self, batch: RecordBatch, column: &str) -> Result<RecordBatch> {
        let Some(listed) = *self.information_schema.read() else { return Ok(batch) };
        let Ok(index) = batch.schema().index_of(column) else { return Ok(batch) };
        let old = int_column(&batch, column)?;
        let new: Int64Array = old.iter().map(|v| v.map(|v| if v == PG15_INFORMATION_SCHEMA_OID { listed } else { v })).collect();
        let mut columns = batch.columns().to_vec();
        columns[index] = cast(&(Arc::new(new) as ArrayRef), batch.schema().field(index).data_type())?;
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
    /// (classoid, objoid, objsubid, description) for every described entity
    /// and field, and the `public` schema's comment as initdb gives it
    /// (pg_dump writes `COMMENT ON SCHEMA public IS ''` when that is missing,
    /// taking it for removed).
    fn rows(&self) -> Vec<(i64, i64, i64, String)> {
        let entities = self.entities.read().clone();
        let mut rows = Vec::new();
        if let (true, Some(namespace)) = (self.schema == "public", *self.namespace.read()) {
            rows.push((PG_NAMESPACE_OID, namespace, 0, PUBLIC_SCHEMA_COMMENT.to_string()));
        }
        for (oid, entity) in entities {
            let Ok(def) = self.ws.entity(&entity) else { continue };
            if !def.desc.is_empty() {
                rows.push((PG_CLASS_OID, oid, 0, def.desc.clone()));
            }
            for (field, number) in def.fields.iter().zip(column_numbers(&def)) {
                if !field.desc.is_empty() {
                    rows.push((PG_CLASS_OID, oid, number, field.desc.clone()));
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

/// The type (OID, typmod) pg_attribute gives a field where the fixed
/// catalog's `text` says less: the type its values are sent with
/// (crate::encode::declared_type); `varchar(n)` for ShortText, MediumText,
/// Identifier and Categorical text, as information_schema gives it
/// (`character varying`, n; values are still sent as text, which drivers
/// read alike); the Postgres type of the field's layout for the rest
/// (timestamptz, arrays: the fixed catalog knows neither an Arrow timestamp
/// with a zone nor a list).
fn catalog_type(ty: &heavenbase::LogicalType) -> Option<(i64, i64)> {
    if let Some(declared) = crate::encode::declared_type(ty) {
        return Some((i64::from(declared.oid()), -1));
    }
    // LongText (SQL `text`) stays `text`, as psql's `\d` and pg_dump show
    // the column its creator declared; its 65535-character limit is in
    // information_schema only.
    use heavenbase::LogicalType;
    match ty {
        LogicalType::LongText { .. } => return None,
        LogicalType::Array { item: Some(item) } if matches!(item.as_ref(), LogicalType::LongText { .. }) => {
            return Some((i64::from(Type::TEXT_ARRAY.oid()), -1));
        }
        _ => {}
    }
    let pg = ty.pg_type();
    if let Some(length) = pg.strip_prefix("varchar(").and_then(|l| l.strip_suffix(')')) {
        // Postgres keeps a varchar's length plus the 4-byte header size.
        return Some((i64::from(Type::VARCHAR.oid()), length.parse::<i64>().ok()? + 4));
    }
    // The rest by its Postgres name (timestamptz, int8[], …).
    Some((i64::from(crate::compat::type_oid(&pg)?), -1))
}

/// A type's typstorage: fixed-size types are stored plain ('p'), variable
/// ones extended ('x'), as Postgres 15's pg_type has them.
fn type_storage(oid: i64) -> &'static str {
    let plain = [Type::UUID, Type::INT8, Type::FLOAT8, Type::BOOL, Type::TIMESTAMPTZ, Type::DATE];
    if plain.iter().any(|t| i64::from(t.oid()) == oid) { "p" } else { "x" }
}

/// A default's OID in pg_attrdef: its table's OID and column number, in a
/// range of its own (as indexes and constraints have theirs).
fn attrdef_oid(table: i64, column: i64) -> i64 {
    ATTRDEF_OID_BASE + ((table as u64).wrapping_mul(0x9E37_79B9).wrapping_add(column as u64) & OID_HASH_MASK) as i64
}

/// pg_catalog, with pg_description describing the entities.
#[derive(Debug)]
struct DescribedPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    descriptions: Arc<Descriptions>,
}

/// Catalogs the fixed catalog lacks, which pg_dump reads: nothing here has
/// transforms or security labels, so they are empty, with Postgres' columns.
const EMPTY_CATALOGS: &[(&str, &[&str])] = &[
    ("pg_transform", &["oid", "trftype", "trflang", "trffromsql", "trftosql"]),
    ("pg_seclabels", &["objoid", "classoid", "objsubid", "objtype", "objnamespace", "objname", "provider", "label"]),
];

fn empty_catalog(name: &str) -> Option<Result<Arc<dyn TableProvider>>> {
    let (_, columns) = EMPTY_CATALOGS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    let text = ["objtype", "objname", "provider", "label"];
    let fields: Vec<Field> =
        columns.iter().map(|c| Field::new(*c, if text.contains(c) { DataType::Utf8 } else { DataType::Int64 }, true)).collect();
    let schema = Arc::new(Schema::new(fields));
    Some(MemTable::try_new(schema, vec![vec![]]).map(|t| Arc::new(t) as Arc<dyn TableProvider>))
}

#[async_trait]
impl SchemaProvider for DescribedPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push(PG_INDEXES.to_string());
        names.extend(EMPTY_CATALOGS.iter().map(|(n, _)| n.to_string()));
        names
    }
    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(PG_INDEXES) || empty_catalog(name).is_some() || self.inner.table_exist(name)
    }
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case(PG_INDEXES) {
            return Ok(Some(self.descriptions.indexes()?));
        }
        if let Some(table) = empty_catalog(name) {
            return table.map(Some);
        }
        let Some(table) = self.inner.table(name).await? else { return Ok(None) };
        if name.eq_ignore_ascii_case("pg_rewrite") {
            // The fixed catalog's rows are Postgres' own system views' rules,
            // for views pg_class here does not list (pg_dump stops at the
            // dangling reference). Our views have no rules beyond their query.
            return Ok(Some(Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?)));
        }
        if name.eq_ignore_ascii_case("pg_roles") {
            return Ok(Some(roles(table.schema())?));
        }
        if name.eq_ignore_ascii_case("pg_views") {
            return Ok(Some(self.descriptions.views(table.schema())?));
        }
        let kind = match name.to_ascii_lowercase().as_str() {
            "pg_class" => Listing::Classes,
            "pg_attribute" => Listing::Oids,
            "pg_description" => Listing::Descriptions,
            "pg_database" => Listing::Databases,
            "pg_index" => Listing::Indexes,
            "pg_constraint" => Listing::Constraints,
            "pg_attrdef" => Listing::Defaults,
            "pg_proc" => Listing::Namespaced("pronamespace"),
            "pg_type" => Listing::Namespaced("typnamespace"),
            _ => return Ok(Some(table)),
        };
        let mut fields: Vec<_> = table.schema().fields().iter().cloned().collect();
        if let Listing::Classes = kind {
            // psql's `\d` reads table options; nothing here has any.
            let options = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
            fields.push(Arc::new(Field::new("reloptions", options, true)));
            // pg_dump reads each table's ACL: none was ever granted (NULL: the default).
            fields.push(Arc::new(Field::new("relacl", DataType::Utf8, true)));
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
    /// pg_index: the fixed rows and the workspace's indexes.
    Indexes,
    /// pg_constraint: the fixed rows and the workspace's primary keys and
    /// UNIQUE constraints.
    Constraints,
    /// pg_attrdef: the fixed rows and the defaults of the entities' columns.
    Defaults,
    /// pg_proc and pg_type: the fixed rows, with information_schema's OID in
    /// this column as pg_namespace lists it.
    Namespaced(&'static str),
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
        // Everything but pg_database, pg_proc and pg_type may be asked for an
        // entity's OID next; those two need information_schema's OID only.
        match self.kind {
            Listing::Databases => {}
            Listing::Namespaced(_) => self.descriptions.refresh_namespaces(state).await?,
            _ => self.descriptions.refresh(state).await?,
        }
        let batches = match self.kind {
            Listing::Oids => {
                let mut batches = read_all(&self.inner, state).await?;
                if self.descriptions.ws.has_system_columns() {
                    batches = batches.iter().map(|b| self.descriptions.numbered_columns(b)).collect::<Result<Vec<_>>>()?;
                }
                batches = batches.iter().map(|b| self.descriptions.declared_attributes(b)).collect::<Result<Vec<_>>>()?;
                let indexed = self.descriptions.index_attributes(&batches)?;
                batches.extend(indexed);
                batches
            }
            Listing::Databases => read_all(&self.inner, state)
                .await?
                .iter()
                .map(|b| self.descriptions.named_databases(b))
                .collect::<Result<Vec<_>>>()?,
            Listing::Classes => {
                let indexed: std::collections::HashSet<String> =
                    self.descriptions.catalog_indexes().into_iter().map(|ix| ix.listing.table).collect();
                let mut batches = read_all(&self.inner, state)
                    .await?
                    .iter()
                    .map(|b| self.descriptions.classes_with_indexes(b, &self.schema, &indexed))
                    .collect::<Result<Vec<_>>>()?;
                batches.extend(self.descriptions.index_classes(&self.schema)?);
                batches
            }
            Listing::Namespaced(column) => {
                let mut batches = read_all(&self.inner, state)
                    .await?
                    .into_iter()
                    .map(|b| self.descriptions.renumbered_namespaces(b, column))
                    .collect::<Result<Vec<_>>>()?;
                if column == "typnamespace" {
                    // pgvector's `vector`, for the clients that look it up.
                    let vector = batches.iter().map(crate::vector_type::pg_type_rows).find_map(Result::transpose);
                    batches.extend(vector.transpose()?);
                }
                batches
            }
            Listing::Indexes | Listing::Constraints => {
                let mut batches = read_all(&self.inner, state)
                    .await?
                    .into_iter()
                    .map(|b| self.descriptions.renumbered_namespaces(b, "connamespace"))
                    .collect::<Result<Vec<_>>>()?;
                batches.extend(match self.kind {
                    Listing::Indexes => self.descriptions.index_rows(&self.schema)?,
                    _ => self.descriptions.constraint_rows(&self.schema)?,
                });
                batches
            }
            Listing::Defaults => {
                let mut batches = read_all(&self.inner, state).await?;
                batches.extend(self.descriptions.default_rows(&self.schema)?);
                batches
            }
            Listing::Descriptions => {
                let mut batches = read_all(&self.inner, state).await?;
                let rows = self.descriptions.rows();
                if !rows.is_empty() {
                    batches.push(description_batch(&self.schema, &rows)?);
                }
                batches
            }
        };
        let batches = batches.iter().map(owned_by_postgres).collect::<Result<Vec<_>>>()?;
        MemTable::try_new(self.schema.clone(), vec![batches])?.scan(state, projection, filters, limit).await
    }
}

/// The role every object here belongs to: `postgres`, OID 10 (Postgres'
/// bootstrap role), the one row of pg_roles.
const OWNER_OID: i64 = 10;

/// Owner columns (`relowner`, `typowner`, …) the fixed catalog leaves 0 name
/// [`OWNER_OID`]: tools look every owner up in pg_roles (pg_dump stops at
/// "role with OID 0 does not exist").
fn owned_by_postgres(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut columns = batch.columns().to_vec();
    for (i, field) in schema.fields().iter().enumerate() {
        if !field.name().ends_with("owner") || !field.data_type().is_integer() {
            continue;
        }
        let owners = datafusion::arrow::compute::cast(&columns[i], &DataType::Int64)?;
        let owners = owners.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
        let fixed: Int64Array = owners.iter().map(|o| o.map(|o| if o == 0 { OWNER_OID } else { o })).collect();
        columns[i] = datafusion::arrow::compute::cast(&fixed, field.data_type())?;
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// pg_roles: the one role, `postgres` (OID 10), which may log in and is not a
/// superuser (as `is_superuser` reports).
fn roles(schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let batch = catalog_rows(&schema, 1, |name| -> Option<ArrayRef> {
        Some(match name {
            "rolname" => Arc::new(StringArray::from(vec!["postgres"])),
            "oid" => Arc::new(Int64Array::from(vec![OWNER_OID])),
            "rolinherit" | "rolcanlogin" => Arc::new(BooleanArray::from(vec![true])),
            "rolconnlimit" => Arc::new(Int64Array::from(vec![-1])),
            _ => return None,
        })
    })?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Rows in pg_description's own column types.
fn description_batch(schema: &SchemaRef, rows: &[(i64, i64, i64, String)]) -> Result<RecordBatch> {
    catalog_rows(schema, rows.len(), |name| -> Option<ArrayRef> {
        Some(match name {
            "classoid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            "objoid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            "objsubid" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            "description" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3.as_str()))),
            _ => return None,
        })
    })
}

/// `n` rows in a catalog table's columns: each column `value` gives (in any
/// type that casts to the column's), the others null where they may be and
/// zero, false or '' where the catalog declares them not null, as Postgres
/// fills what does not apply.
fn catalog_rows(schema: &SchemaRef, n: usize, value: impl Fn(&str) -> Option<ArrayRef>) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let given = match value(field.name()) {
                Some(array) => array,
                None if field.is_nullable() => return Ok(datafusion::arrow::array::new_null_array(field.data_type(), n)),
                None => match field.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        Arc::new(StringArray::from_iter_values(std::iter::repeat_n("", n))) as ArrayRef
                    }
                    other => ScalarValue::new_zero(other)?.to_array_of_size(n)?,
                },
            };
            Ok(cast(&given, field.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `pg_get_expr(expression, relation [, pretty])`: the expression's text as
/// it is stored (see `register`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgGetExpr {
    signature: Signature,
}

impl Default for PgGetExpr {
    fn default() -> Self {
        use datafusion::logical_expr::TypeSignature::Any;
        PgGetExpr { signature: Signature::one_of(vec![Any(2), Any(3)], Volatility::Stable) }
    }
}

impl ScalarUDFImpl for PgGetExpr {
    fn name(&self) -> &str {
        "pg_get_expr"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        args.args[0].cast_to(&DataType::Utf8, None)
    }
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
        let indexes = match self.name {
            "pg_get_indexdef" | "pg_get_constraintdef" => self.descriptions.catalog_indexes(),
            _ => Vec::new(),
        };
        let out: StringArray = (0..args.number_rows)
            .map(|row| match self.name {
                "col_description" => self.descriptions.describe(number(0, row)?, number(1, row)?),
                // A table's own description; other catalogs hold nothing of ours.
                "obj_description" => {
                    let catalog = arrays.get(1).and_then(|a| ScalarValue::try_from_array(a, row).ok()).map(|v| v.to_string());
                    match catalog.as_deref() {
                        None | Some("pg_class") => self.descriptions.describe(number(0, row)?, 0),
                        Some("pg_namespace") => {
                            let (oid, public) = (number(0, row)?, self.descriptions.schema == "public");
                            (public && *self.descriptions.namespace.read() == Some(oid))
                                .then(|| PUBLIC_SCHEMA_COMMENT.to_string())
                        }
                        Some(_) => None,
                    }
                }
                "pg_get_indexdef" => self.descriptions.index_definition(&indexes, number(0, row)?, number(1, row).unwrap_or(0)),
                "pg_get_constraintdef" => Descriptions::constraint_definition(&indexes, number(0, row)?),
                _ => None,
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
