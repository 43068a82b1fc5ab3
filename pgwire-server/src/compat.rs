//! Functions drivers call on connect that DataFusion spells differently or
//! lacks: `version()` in the form they parse, `to_regtype(name)` and
//! `pg_get_serial_sequence`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(version());
    ctx.register_udf(to_regtype());
    ctx.register_udf(pg_get_serial_sequence());
    ctx.register_udf(create_udf(
        // Every collation in pg_catalog is on the search path.
        "pg_collation_is_visible",
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(JsonBuildObject::default()));
}

/// `json_build_object(key, value, …)` as JSON text (SQLAlchemy's column
/// reflection builds identity and collation details with it).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: datafusion::logical_expr::Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        JsonBuildObject { signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable) }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        if args.args.len() % 2 != 0 {
            return Err(datafusion::error::DataFusionError::Plan(
                "json_build_object takes an even number of arguments (key, value, …)".into(),
            ));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = args.number_rows;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                let key = if key.is_null() { "null".to_string() } else { key.to_string() };
                object.insert(key, scalar_json(&value));
            }
            out.push(Some(serde_json::Value::Object(object).to_string()));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

fn scalar_json(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        v if v.is_null() => J::Null,
        ScalarValue::Boolean(Some(b)) => J::Bool(*b),
        ScalarValue::Int8(_) | ScalarValue::Int16(_) | ScalarValue::Int32(_) | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_) | ScalarValue::UInt16(_) | ScalarValue::UInt32(_) | ScalarValue::UInt64(_)
        | ScalarValue::Float32(_) | ScalarValue::Float64(_) => {
            serde_json::from_str(&v.to_string()).unwrap_or_else(|_| J::String(v.to_string()))
        }
        other => J::String(other.to_string()),
    }
}

/// Entities have no sequences: `pg_get_serial_sequence(table, column)` is NULL.
fn pg_get_serial_sequence() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    )
}

/// SQLAlchemy, pgJDBC and others read "PostgreSQL X.Y" from `version()`; the
/// rest of the text names what actually answers.
fn version() -> datafusion::logical_expr::ScalarUDF {
    let text = format!(
        "PostgreSQL 16.6 on x86_64-pc-linux-gnu (HeavenBase {}, Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// The pg_type oids of the built-in types, by the names `to_regtype` accepts.
const TYPE_OIDS: &[(&str, i32)] = &[
    ("bool", 16), ("boolean", 16), ("bytea", 17), ("name", 19), ("int8", 20), ("bigint", 20),
    ("int2", 21), ("smallint", 21), ("int4", 23), ("integer", 23), ("int", 23), ("text", 25),
    ("oid", 26), ("json", 114), ("float4", 700), ("real", 700), ("float8", 701),
    ("double precision", 701), ("varchar", 1043), ("character varying", 1043), ("bpchar", 1042),
    ("date", 1082), ("time", 1083), ("timestamp", 1114), ("timestamp without time zone", 1114),
    ("timestamptz", 1184), ("timestamp with time zone", 1184), ("interval", 1186),
    ("numeric", 1700), ("uuid", 2950), ("jsonb", 3802),
];

/// `to_regtype(name)`: the type's oid, or NULL for a type this server does not
/// have (psycopg and SQLAlchemy probe for hstore this way on connect).
fn to_regtype() -> datafusion::logical_expr::ScalarUDF {
    fn oid(name: &str) -> Option<i32> {
        let name = name.trim().trim_start_matches("pg_catalog.").to_lowercase();
        TYPE_OIDS.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            Ok(match &args[0] {
                ColumnarValue::Scalar(s) => ColumnarValue::Scalar(ScalarValue::Int32(match s {
                    ScalarValue::Utf8(Some(n)) | ScalarValue::LargeUtf8(Some(n)) | ScalarValue::Utf8View(Some(n)) => oid(n),
                    _ => None,
                })),
                ColumnarValue::Array(a) => {
                    let cast = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                    let names = cast.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                    let oids: Int32Array = (0..names.len()).map(|i| if names.is_null(i) { None } else { oid(names.value(i)) }).collect();
                    ColumnarValue::Array(Arc::new(oids))
                }
            })
        }),
    )
}
