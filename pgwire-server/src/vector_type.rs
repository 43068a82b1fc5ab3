//! The `vector` type as pgvector declares it, for the clients that look it
//! up: pgvector-python's `register_vector(conn)` (psycopg) reads `vector`'s
//! row from pg_type through `to_regtype('vector')` and fails without one;
//! with it, numpy arrays and `Vector` objects are sent as parameters of that
//! type, in pgvector's binary form (vector_params.rs reads it).
//!
//! Vector columns are still sent as `float4[]` (so every driver reads them
//! as a list of floats without registering anything, and pg_dump writes
//! `real[]`, which any Postgres restores); the type exists here for what
//! clients send and ask, not as a column type.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

/// `vector`'s OID and its array type's, fixed (pgvector's are given at
/// CREATE EXTENSION): far above the OIDs the catalog hands out from 16384,
/// below the index OIDs (describe.rs), within int4.
pub(crate) const VECTOR_OID: i32 = 0x3000_0000;
pub(crate) const VECTOR_ARRAY_OID: i32 = 0x3000_0001;

/// The namespace the rows are in: pg_catalog, with the built-in types. With
/// pgvector they would be in the schema CREATE EXTENSION chose, and pg_dump
/// would write that CREATE EXTENSION; here there is no extension to write, and
/// pg_dump (which dumps every type outside pg_catalog) would write a CREATE
/// TYPE no Postgres can run.
const PG_CATALOG_NAMESPACE: i64 = 11;

/// pg_type's rows for `vector` and `_vector`, made from bytea's and
/// `_bytea`'s (a variable-length base type of category U and its array,
/// as pgvector's are) in `batch`. None when `batch` does not hold those rows.
pub(crate) fn pg_type_rows(batch: &RecordBatch) -> Result<Option<RecordBatch>> {
    let namespace = PG_CATALOG_NAMESPACE;
    let text = |s: &str| ScalarValue::Utf8(Some(s.to_string()));
    let oid = |o: i32| ScalarValue::Int64(Some(i64::from(o)));
    let base = row_like(
        batch,
        17,
        &[
            ("oid", oid(VECTOR_OID)),
            ("typname", text("vector")),
            ("typnamespace", ScalarValue::Int64(Some(namespace))),
            ("typarray", oid(VECTOR_ARRAY_OID)),
            ("typinput", text("vector_in")),
            ("typoutput", text("vector_out")),
            ("typreceive", text("vector_recv")),
            ("typsend", text("vector_send")),
            ("typmodin", text("vector_typmod_in")),
            ("typstorage", text("e")),
        ],
    )?;
    let array = row_like(
        batch,
        1001,
        &[
            ("oid", oid(VECTOR_ARRAY_OID)),
            ("typname", text("_vector")),
            ("typnamespace", ScalarValue::Int64(Some(namespace))),
            ("typelem", oid(VECTOR_OID)),
        ],
    )?;
    match (base, array) {
        (Some(base), Some(array)) => Ok(Some(datafusion::arrow::compute::concat_batches(&batch.schema(), [&base, &array])?)),
        _ => Ok(None),
    }
}

/// The row of `batch` whose oid is `template`, with `changes` made.
fn row_like(batch: &RecordBatch, template: i64, changes: &[(&str, ScalarValue)]) -> Result<Option<RecordBatch>> {
    let oids = cast(batch.column(batch.schema().index_of("oid")?), &DataType::Int64)?;
    let matches: datafusion::arrow::array::BooleanArray =
        oids.as_primitive::<Int64Type>().iter().map(|o| Some(o == Some(template))).collect();
    let row = filter_record_batch(batch, &matches)?;
    if row.num_rows() != 1 {
        return Ok(None);
    }
    let mut columns = row.columns().to_vec();
    for (name, value) in changes {
        let at = row.schema().index_of(name)?;
        columns[at] = cast(&value.to_array_of_size(1)?, row.schema().field(at).data_type())?;
    }
    Ok(Some(RecordBatch::try_new(row.schema(), columns)?))
}

/// `format_type(oid, typmod)` that also names `vector` (`vector(3)` with
/// its dimensions as the typmod, as pgvector's typmod is) and `vector[]`;
/// every other type as the catalog's own function names it.
#[derive(Debug)]
pub(crate) struct FormatType {
    inner: Arc<ScalarUDF>,
}

impl FormatType {
    pub(crate) fn wrapping(inner: Arc<ScalarUDF>) -> ScalarUDF {
        ScalarUDF::new_from_impl(FormatType { inner })
    }
}

impl PartialEq for FormatType {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}
impl Eq for FormatType {}
impl std::hash::Hash for FormatType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

impl ScalarUDFImpl for FormatType {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let values = args.args.clone();
        let named = self.inner.invoke_with_args(args)?;
        let scalar = matches!(named, ColumnarValue::Scalar(_));
        let oids = values[0].to_array(rows)?;
        let oids = cast(&oids, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        if !oids.iter().any(|o| matches!(o, Some(o) if o == i64::from(VECTOR_OID) || o == i64::from(VECTOR_ARRAY_OID))) {
            return Ok(named);
        }
        let typmods = match values.get(1) {
            Some(m) => Some(cast(&m.to_array(rows)?, &DataType::Int64)?),
            None => None,
        };
        let named = cast(&named.to_array(rows)?, &DataType::Utf8)?;
        let named = named.as_string::<i32>();
        let out: StringArray = (0..oids.len())
            .map(|i| {
                let typmod = typmods.as_ref().and_then(|m| {
                    let m = m.as_primitive::<Int64Type>();
                    (m.is_valid(i) && m.value(i) > 0).then(|| m.value(i))
                });
                match oids.is_valid(i).then(|| oids.value(i)) {
                    Some(o) if o == i64::from(VECTOR_OID) => {
                        Some(typmod.map_or_else(|| "vector".to_string(), |dims| format!("vector({dims})")))
                    }
                    Some(o) if o == i64::from(VECTOR_ARRAY_OID) => Some("vector[]".to_string()),
                    _ => named.is_valid(i).then(|| named.value(i).to_string()),
                }
            })
            .collect();
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}
