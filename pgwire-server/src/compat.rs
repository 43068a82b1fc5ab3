//! Functions drivers call on connect that DataFusion spells differently or
//! lacks: `version()` in the form they parse, `to_regtype(name)`,
//! `pg_get_serial_sequence`, `current_setting`, `pg_size_pretty`, and `hb_regclass`,
//! `hb_when` and `hb_null` for rewrite.rs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use datafusion_postgres::pgwire::api::{ClientInfo, Type};
use datafusion_postgres::pgwire::error::PgWireResult;

pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(version());
    ctx.register_udf(crate::settings::set_config_udf());
    // A workspace is never a standby replaying another server's log.
    ctx.register_udf(create_udf(
        "pg_is_in_recovery",
        vec![],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))))),
    ));
    ctx.register_udf(acldefault());
    // pg_trigger is empty: no OID ever names a trigger.
    ctx.register_udf(create_udf(
        "pg_get_triggerdef",
        vec![DataType::Int64, DataType::Boolean],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
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
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(CurrentSetting::default()));
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(When::default()));
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(Format::default()));
    ctx.register_udf(create_udf(
        crate::rewrite::helpers::OIDVECTOR,
        vec![DataType::Utf8],
        DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new_list_field(DataType::Int64, true))),
        Volatility::Immutable,
        Arc::new(|args| {
            let texts = ColumnarValue::values_to_arrays(args)?;
            let texts = datafusion::arrow::compute::cast(&texts[0], &DataType::Utf8)?;
            let texts = texts.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
            let mut lists = datafusion::arrow::array::ListBuilder::new(datafusion::arrow::array::Int64Builder::new());
            for text in texts.iter() {
                match text {
                    Some(text) => {
                        for part in text.split_whitespace() {
                            let number = part.parse::<i64>().map_err(|_| {
                                datafusion::error::DataFusionError::Execution(format!("invalid oidvector element \"{part}\""))
                            })?;
                            lists.values().append_value(number);
                        }
                        lists.append(true);
                    }
                    None => lists.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(lists.finish())))
        }),
    ));
    // NULL, whatever its arguments (rewrite.rs keeps parameters alive with it).
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
        datafusion::logical_expr::SimpleScalarUDF::new_with_signature(
            crate::rewrite::helpers::NULL,
            datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable),
            DataType::Utf8,
            Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
        ),
    ));
    if let Ok(format_type) = datafusion::execution::FunctionRegistry::udf(ctx, "format_type") {
        ctx.register_udf(crate::vector_type::FormatType::wrapping(format_type));
    }
    // psql's `\dt+` asks pg_table_size; the catalog answers pg_relation_size.
    if let Ok(size) = datafusion::execution::FunctionRegistry::udf(ctx, "pg_relation_size") {
        ctx.register_udf(size.as_ref().clone().with_aliases(["pg_table_size"]));
    }
    ctx.register_udf(create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            let sizes = ColumnarValue::values_to_arrays(args)?;
            let sizes = datafusion::arrow::compute::cast(&sizes[0], &DataType::Int64)?;
            let sizes = sizes.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().expect("cast to Int64");
            let out: StringArray = sizes.iter().map(|s| s.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    ));
    ctx.register_udf(create_udf(
        // `$n::regclass` for the system catalogs (see rewrite.rs); NULL otherwise.
        crate::rewrite::helpers::REGCLASS,
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let names = datafusion::arrow::compute::cast(&names[0], &DataType::Utf8)?;
            let names = names.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
            let oids: Int32Array = names.iter().map(|n| n.and_then(crate::rewrite::catalog_oid).map(|o| o as i32)).collect();
            Ok(ColumnarValue::Array(Arc::new(oids)))
        }),
    ));
}

/// Postgres' `format(formatstr, args…)`: `%s` (an argument's text, NULL as
/// nothing), `%I` (an identifier, quoted when it needs to be; NULL is an
/// error), `%L` (a literal, NULL as `NULL`), `%%`, and argument positions
/// (`%2$s`). Width and `-` flags are refused (22023) rather than ignored.
/// Catalog loaders use it (sqlsmith names types `format('%I.%I', …)`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: datafusion::logical_expr::Signature,
}

impl Default for Format {
    fn default() -> Self {
        Format { signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable) }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some((template, values)) = arrays.split_first() else {
            return Err(datafusion::error::DataFusionError::Plan("format() takes a format string".into()));
        };
        let texts = |array: &datafusion::arrow::array::ArrayRef| -> datafusion::error::Result<StringArray> {
            let text = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
            Ok(text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
        };
        let template = texts(template)?;
        let values = values.iter().map(texts).collect::<datafusion::error::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            if template.is_null(row) {
                out.push(None);
                continue;
            }
            let row_values: Vec<Option<&str>> = values.iter().map(|v| (!v.is_null(row)).then(|| v.value(row))).collect();
            let formatted = format_text(template.value(row), &row_values)
                .map_err(|e| datafusion::error::DataFusionError::Execution(format!("format(): {e}")))?;
            out.push(Some(formatted));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// One `format()` call: `template` with `%s`, `%I`, `%L`, `%%` and `%n$…`.
fn format_text(template: &str, values: &[Option<&str>]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // An argument position: digits then `$`.
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let at = if digits.is_empty() {
            next
        } else if chars.peek() == Some(&'$') {
            chars.next();
            let position: usize = digits.parse().map_err(|_| "argument position out of range".to_string())?;
            position.checked_sub(1).ok_or_else(|| "format specifies argument 0, but arguments are numbered from 1".to_string())?
        } else {
            return Err("width is not supported".into());
        };
        let kind = chars.next().ok_or_else(|| "unterminated format() type specifier".to_string())?;
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(format!("unrecognized format() type specifier \"{kind}\""));
        }
        let value = *values.get(at).ok_or_else(|| "too few arguments for format()".to_string())?;
        next = at + 1;
        match (kind, value) {
            ('s', v) => out.push_str(v.unwrap_or_default()),
            ('I', Some(v)) => out.push_str(&heavenbase::render::quote_ident(v)),
            ('I', None) => return Err("null values cannot be formatted as an SQL identifier".into()),
            (_, Some(v)) => out.push_str(&heavenbase::render::quote_literal(v)),
            (_, None) => out.push_str("NULL"),
        }
    }
    Ok(out)
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
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Float32(_)
        | ScalarValue::Float64(_) => serde_json::from_str(&v.to_string()).unwrap_or_else(|_| J::String(v.to_string())),
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

/// The Postgres version the server presents (startup parameters, `version()`,
/// `SHOW`, `current_setting`). 15: the catalog answers as Postgres 15's does,
/// and a client refuses a server newer than itself (pg_dump 15 stops with
/// "server version mismatch" at 16), while newer clients all accept an older
/// server; the lowest version whose catalog we model serves the most tools.
pub(crate) const SERVER_VERSION: &str = "15.19";
const SERVER_VERSION_NUM: &str = "150019";

/// `acldefault(kind, owner)`: the privileges an object of that kind has when
/// no GRANT changed them, as Postgres 15 writes them (pg_dump compares every
/// object's ACL with it, and prints GRANTs only for differences). The one
/// role here is `postgres` (OID 10).
fn acldefault() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "acldefault",
        vec![DataType::Utf8, DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let kinds = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let kinds = kinds.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
            let owners = datafusion::arrow::compute::cast(&arrays[1], &DataType::Int64)?;
            let owners = owners.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().expect("cast to Int64");
            let out: StringArray = (0..kinds.len())
                .map(|i| {
                    if kinds.is_null(i) || owners.is_null(i) {
                        return None;
                    }
                    let o = if owners.value(i) == 10 { "postgres".to_string() } else { owners.value(i).to_string() };
                    Some(match kinds.value(i) {
                        "c" => "{}".to_string(),
                        "r" => format!("{{{o}=arwdDxt/{o}}}"),
                        "s" => format!("{{{o}=rwU/{o}}}"),
                        "d" => format!("{{=Tc/{o},{o}=CTc/{o}}}"),
                        "f" => format!("{{=X/{o},{o}=X/{o}}}"),
                        "l" | "T" => format!("{{=U/{o},{o}=U/{o}}}"),
                        "L" => format!("{{{o}=rw/{o}}}"),
                        "n" => format!("{{{o}=UC/{o}}}"),
                        "t" => format!("{{{o}=C/{o}}}"),
                        "F" | "S" => format!("{{{o}=U/{o}}}"),
                        _ => return None,
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// SQLAlchemy, pgJDBC and others read "PostgreSQL X.Y" from `version()`; the
/// rest of the text names what actually answers.
fn version() -> datafusion::logical_expr::ScalarUDF {
    let text = format!(
        "PostgreSQL {SERVER_VERSION} on x86_64-pc-linux-gnu (HeavenBase {}, Apache DataFusion {})",
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
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("name", 19),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("integer", 23),
    ("int", 23),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("varchar", 1043),
    ("character varying", 1043),
    ("bpchar", 1042),
    ("date", 1082),
    ("time", 1083),
    ("timestamp", 1114),
    ("timestamp without time zone", 1114),
    ("timestamptz", 1184),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("numeric", 1700),
    ("uuid", 2950),
    ("jsonb", 3802),
    ("bit", 1560),
    ("varbit", 1562),
    ("bit varying", 1562),
    // Arrays, by the element names above.
    ("bool[]", 1000),
    ("boolean[]", 1000),
    ("bytea[]", 1001),
    ("text[]", 1009),
    ("int8[]", 1016),
    ("bigint[]", 1016),
    ("float4[]", 1021),
    ("real[]", 1021),
    ("float8[]", 1022),
    ("double precision[]", 1022),
    ("varchar[]", 1015),
    ("character varying[]", 1015),
    ("date[]", 1182),
    ("timestamptz[]", 1185),
    ("timestamp with time zone[]", 1185),
    // pgvector's, for the clients that register it (vector_type.rs).
    ("vector", crate::vector_type::VECTOR_OID),
];

/// The pg_type oid of a built-in type by name (`int8`, `bigint`,
/// `pg_catalog.text[]`), as `to_regtype` and pg_attribute (describe.rs) find it.
pub(crate) fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().trim_start_matches("pg_catalog.").to_lowercase();
    TYPE_OIDS.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
}

/// `to_regtype(name)`: the type's oid, or NULL for a type this server does not
/// have (psycopg and SQLAlchemy probe for hstore this way on connect).
fn to_regtype() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            Ok(match &args[0] {
                ColumnarValue::Scalar(s) => ColumnarValue::Scalar(ScalarValue::Int32(match s {
                    ScalarValue::Utf8(Some(n)) | ScalarValue::LargeUtf8(Some(n)) | ScalarValue::Utf8View(Some(n)) => type_oid(n),
                    _ => None,
                })),
                ColumnarValue::Array(a) => {
                    let cast = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                    let names = cast.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                    let oids: Int32Array =
                        (0..names.len()).map(|i| if names.is_null(i) { None } else { type_oid(names.value(i)) }).collect();
                    ColumnarValue::Array(Arc::new(oids))
                }
            })
        }),
    )
}

/// Server settings as `current_setting(name [, missing_ok])` reports them: the
/// values every session starts with (Grafana reads search_path and
/// server_version_num this way). SET changes what SHOW reports for the session,
/// not these.
const SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", SERVER_VERSION_NUM),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("search_path", "\"$user\", public"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("max_identifier_length", "63"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("is_superuser", "off"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
];

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: datafusion::logical_expr::Signature,
}

impl Default for CurrentSetting {
    fn default() -> Self {
        CurrentSetting { signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Stable) }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(names) = arrays.first() else {
            return Err(datafusion::error::DataFusionError::Plan("current_setting(name [, missing_ok]) needs a name".into()));
        };
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let name = ScalarValue::try_from_array(names, row)?;
            if name.is_null() {
                out.push(None);
                continue;
            }
            let name = name.to_string().to_ascii_lowercase();
            let missing_ok = match arrays.get(1) {
                Some(a) => matches!(ScalarValue::try_from_array(a, row)?, ScalarValue::Boolean(Some(true))),
                None => false,
            };
            match SETTINGS.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => out.push(Some(value.to_string())),
                None if missing_ok => out.push(None),
                None => {
                    return Err(datafusion::error::DataFusionError::Plan(format!(
                        "unrecognized configuration parameter \"{name}\""
                    )));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// Postgres' rendering of a byte count: bytes below 10 kB, then kB, MB, GB, TB
/// and PB, each rounded half away from zero.
fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    // One extra bit is kept for rounding.
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < 2 * LIMIT - 1 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_render_like_postgres() {
        for (bytes, text) in [
            (0, "0 bytes"),
            (10239, "10239 bytes"),
            (10240, "10 kB"),
            (8 << 20, "8192 kB"),
            (20 << 20, "20 MB"),
            (3 << 40, "3072 GB"),
        ] {
            assert_eq!(super::size_pretty(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn format_follows_postgres() {
        let f = super::format_text;
        assert_eq!(f("%I.%I", &[Some("public"), Some("My Table")]).unwrap(), "public.\"My Table\"");
        assert_eq!(f("%s = %L", &[Some("a"), Some("it's")]).unwrap(), "a = 'it''s'");
        assert_eq!(f("%L and %s|", &[None, None]).unwrap(), "NULL and |");
        assert_eq!(f("%2$s %1$s %s", &[Some("a"), Some("b")]).unwrap(), "b a b");
        assert_eq!(f("100%%", &[]).unwrap(), "100%");
        assert!(f("%I", &[None]).unwrap_err().contains("identifier"));
        assert!(f("%s %s", &[Some("a")]).unwrap_err().contains("too few"));
        assert!(f("%10s", &[Some("a")]).unwrap_err().contains("width"));
        assert!(f("%x", &[Some("a")]).unwrap_err().contains("specifier"));
    }
}

/// `hb_when(condition, value)`: value where condition holds, else NULL. The
/// form rewrite.rs gives `CASE WHEN c THEN (subquery) END`, since DataFusion
/// decorrelates subqueries in function arguments but not inside CASE.
#[derive(Debug, PartialEq, Eq, Hash)]
struct When {
    signature: datafusion::logical_expr::Signature,
}

impl Default for When {
    fn default() -> Self {
        When { signature: datafusion::logical_expr::Signature::any(2, Volatility::Immutable) }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for When {
    fn name(&self) -> &str {
        crate::rewrite::helpers::WHEN
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(args[1].clone())
    }
    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let condition = datafusion::arrow::compute::cast(&arrays[0], &DataType::Boolean)?;
        let condition = condition.as_any().downcast_ref::<datafusion::arrow::array::BooleanArray>().expect("cast to Boolean");
        // nullif blanks where its mask is true: where the condition is not.
        let unmet: datafusion::arrow::array::BooleanArray = condition.iter().map(|c| Some(c != Some(true))).collect();
        Ok(ColumnarValue::Array(datafusion::arrow::compute::nullif(&arrays[1], &unmet)?))
    }
}

/// `SHOW name` for the settings [`SETTINGS`] holds, answered as
/// `current_setting(name)` answers them, unless the session has its own value
/// (startup parameters and SET live in the client's metadata; datafusion-postgres'
/// SetShowHook, next in line, reports those). Without it `SHOW server_version`
/// named DataFusion where `version()` and the startup parameters say 15.19,
/// `SHOW transaction isolation level` said `read_committed`, and
/// `SHOW server_version_num` answered an empty `unsupported_show_statement`
/// row, which stops sqlsmith (and libpqxx programs) from starting.
pub(crate) struct ShowSettings;

impl ShowSettings {
    fn answer(statement: &Statement, client: &(dyn ClientInfo + Send + Sync)) -> Option<PgWireResult<Response>> {
        let Statement::ShowVariable { variable } = statement else { return None };
        let words: Vec<String> = variable.iter().map(|v| v.value.to_ascii_lowercase()).collect();
        let name = match words.as_slice() {
            [one] => one.as_str(),
            [a, b, c] if a == "transaction" && b == "isolation" && c == "level" => "transaction_isolation",
            _ => return None,
        };
        if client.metadata().contains_key(name) {
            return None;
        }
        let (name, value) = SETTINGS.iter().find(|(n, _)| *n == name)?;
        Some(setting_row(name, value))
    }
}

/// One row, one text column named after the setting, as Postgres answers SHOW.
pub(crate) fn setting_row(name: &str, value: &str) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(name.to_string(), None, None, Type::TEXT, FieldFormat::Text)]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(vec![Ok(row)]))))
}

#[async_trait]
impl QueryHook for ShowSettings {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // SetShowHook describes every SHOW (one text column).
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client)
    }
}
