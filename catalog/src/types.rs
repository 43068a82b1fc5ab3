//! Logical types (docs/reference.md §1.2): their identifiers, descriptor forms, Arrow and
//! Postgres types, and write-time validation and coercion.
//!
//! Coercion writes straight into Arrow builders ([`ColumnBuilder`]), so a batch of
//! rows is validated and laid out as columns in one pass. Length limits are errors,
//! never truncation.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeListBuilder, Float32Builder, Float64Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value as Json, json};

use crate::CatalogError;

pub const IDENTIFIER_MAX: usize = 63;
pub const SHORT_TEXT_MAX: usize = 255;
pub const MEDIUM_TEXT_MAX: usize = 4095;
pub const LONG_TEXT_MAX: usize = 65535;

/// Milliseconds of 9999-12-31T23:59:59Z and of 0001-01-01T00:00:00Z: the range a
/// Timestamp accepts (Postgres `timestamptz` and ISO 8601 both cover it).
pub const TIMESTAMP_MAX_MS: i64 = 253_402_300_799_000;
pub const TIMESTAMP_MIN_MS: i64 = -62_135_596_800_000;

/// Days from 0001-01-01 to 1970-01-01, for the date range check.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

#[derive(Debug, Clone, PartialEq)]
pub enum LogicalType {
    Identifier {
        max_chars: usize,
        target_entity: Option<String>,
    },
    ShortText {
        max_chars: usize,
    },
    MediumText {
        max_chars: usize,
    },
    LongText {
        max_chars: usize,
    },
    Integer,
    Float,
    Boolean,
    /// Epoch milliseconds, UTC. Arrow `Timestamp(ms, "UTC")`.
    Timestamp,
    /// Milliseconds, never negative. Arrow `Int64`.
    Duration,
    /// Calendar date. Arrow `Date32`.
    Date,
    Categorical {
        values: Vec<Json>,
        base: CategoricalBase,
    },
    /// A list; `item` None means items of any JSON kind, kept as JSON text.
    Array {
        item: Option<Box<LogicalType>>,
    },
    /// Any JSON value, stored as compact JSON text.
    Json,
    Vector {
        dim: usize,
    },
    Artifact,
    /// A UUID (SQL `uuid`), kept as its canonical text: 36 characters,
    /// lower-case hex in groups of 8-4-4-4-12. Every form Postgres reads
    /// (upper case, braces, hyphens after any group of four digits, none)
    /// is written in that form; anything else is refused.
    Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoricalBase {
    String,
    Integer,
}

/// How values of a logical type are laid out, in Arrow and in every backend:
/// the one type map. Arrow ([`PhysicalType::arrow_type`]), the Postgres wire
/// ([`PhysicalType::pg_type`]) and each SQL backend's column types are spellings
/// of it, each matching it exhaustively, so a new layout is a compile error
/// wherever it must be spelled. Limits, categories and the like are not layout:
/// they are checked on the way in ([`ColumnBuilder`], [`crate::coerce_column`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhysicalType {
    Text,
    Int,
    Float,
    Bool,
    /// Epoch milliseconds, UTC.
    Timestamp,
    /// Days since 1970-01-01.
    Date,
    Bytes,
    /// `dim` single-precision floats.
    Vector {
        dim: usize,
    },
    /// A list of one item layout; an Array without an item type holds Json items.
    List(Box<PhysicalType>),
    /// A JSON document, kept as compact text.
    Json,
}

impl PhysicalType {
    pub fn arrow_type(&self) -> DataType {
        match self {
            PhysicalType::Text | PhysicalType::Json => DataType::Utf8,
            PhysicalType::Int => DataType::Int64,
            PhysicalType::Float => DataType::Float64,
            PhysicalType::Bool => DataType::Boolean,
            PhysicalType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            PhysicalType::Date => DataType::Date32,
            PhysicalType::Bytes => DataType::Binary,
            PhysicalType::Vector { dim } => {
                DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), *dim as i32)
            }
            PhysicalType::List(item) => DataType::List(Arc::new(Field::new("item", item.arrow_type(), true))),
        }
    }

    /// The Postgres type of the layout. A list of lists or vectors has no
    /// Postgres array type of its own: it is a JSON document.
    pub fn pg_type(&self) -> &'static str {
        match self {
            PhysicalType::Text => "text",
            PhysicalType::Int => "int8",
            PhysicalType::Float => "float8",
            PhysicalType::Bool => "bool",
            PhysicalType::Timestamp => "timestamptz",
            PhysicalType::Date => "date",
            PhysicalType::Bytes => "bytea",
            PhysicalType::Vector { .. } => "float4[]",
            PhysicalType::Json => "jsonb",
            PhysicalType::List(item) => match item.as_ref() {
                PhysicalType::Text => "text[]",
                PhysicalType::Int => "int8[]",
                PhysicalType::Float => "float8[]",
                PhysicalType::Bool => "bool[]",
                PhysicalType::Timestamp => "timestamptz[]",
                PhysicalType::Date => "date[]",
                PhysicalType::Bytes => "bytea[]",
                PhysicalType::Vector { .. } | PhysicalType::List(_) | PhysicalType::Json => "jsonb",
            },
        }
    }
}

impl LogicalType {
    /// The logical type for values of an Arrow type, where a table is made
    /// from data that only Arrow describes (`CREATE TABLE … AS SELECT`,
    /// `hb import` of Parquet or CSV): text is LongText (Postgres' `text`),
    /// float lists are vectors, structs and maps JSON; what no layout holds
    /// (intervals among them) is kept as its text.
    pub fn from_arrow(arrow: &DataType) -> LogicalType {
        match arrow {
            DataType::Boolean => LogicalType::Boolean,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => LogicalType::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => LogicalType::Float,
            DataType::Date32 | DataType::Date64 => LogicalType::Date,
            DataType::Timestamp(..) => LogicalType::Timestamp,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                LogicalType::Artifact
            }
            DataType::FixedSizeList(item, n) if item.data_type().is_floating() && *n > 0 => LogicalType::vector(*n as usize),
            DataType::List(item) | DataType::LargeList(item) => LogicalType::array_of(match item.data_type() {
                DataType::Int64 | DataType::Int32 | DataType::Int16 => LogicalType::Integer,
                DataType::Float64 | DataType::Float32 => LogicalType::Float,
                DataType::Boolean => LogicalType::Boolean,
                _ => LogicalType::short_text(),
            }),
            DataType::Struct(_) | DataType::Map(..) => LogicalType::Json,
            _ => LogicalType::long_text(),
        }
    }
    pub fn identifier() -> Self {
        LogicalType::Identifier { max_chars: IDENTIFIER_MAX, target_entity: None }
    }
    pub fn short_text() -> Self {
        LogicalType::ShortText { max_chars: SHORT_TEXT_MAX }
    }
    pub fn medium_text() -> Self {
        LogicalType::MediumText { max_chars: MEDIUM_TEXT_MAX }
    }
    pub fn long_text() -> Self {
        LogicalType::LongText { max_chars: LONG_TEXT_MAX }
    }
    pub fn array_of(item: LogicalType) -> Self {
        LogicalType::Array { item: Some(Box::new(item)) }
    }
    pub fn vector(dim: usize) -> Self {
        LogicalType::Vector { dim }
    }
    pub fn categorical<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        LogicalType::Categorical {
            values: values.into_iter().map(|v| Json::String(v.into())).collect(),
            base: CategoricalBase::String,
        }
    }

    /// The lower-hyphen identifier of docs/reference.md §1.2 (`short-text`).
    pub fn type_id(&self) -> &'static str {
        match self {
            LogicalType::Identifier { .. } => "identifier",
            LogicalType::ShortText { .. } => "short-text",
            LogicalType::MediumText { .. } => "medium-text",
            LogicalType::LongText { .. } => "long-text",
            LogicalType::Integer => "integer",
            LogicalType::Float => "float",
            LogicalType::Boolean => "boolean",
            LogicalType::Timestamp => "timestamp",
            LogicalType::Duration => "duration",
            LogicalType::Date => "date",
            LogicalType::Categorical { .. } => "categorical",
            LogicalType::Array { .. } => "array",
            LogicalType::Json => "json",
            LogicalType::Vector { .. } => "vector",
            LogicalType::Artifact => "artifact",
            LogicalType::Uuid => "uuid",
        }
    }

    /// The class name used in messages ("ShortText exceeds 255 characters").
    pub fn class_name(&self) -> &'static str {
        match self {
            LogicalType::Identifier { .. } => "Identifier",
            LogicalType::ShortText { .. } => "ShortText",
            LogicalType::MediumText { .. } => "MediumText",
            LogicalType::LongText { .. } => "LongText",
            LogicalType::Integer => "Integer",
            LogicalType::Float => "Float",
            LogicalType::Boolean => "Boolean",
            LogicalType::Timestamp => "Timestamp",
            LogicalType::Duration => "Duration",
            LogicalType::Date => "Date",
            LogicalType::Categorical { .. } => "Categorical",
            LogicalType::Array { .. } => "Array",
            LogicalType::Json => "Json",
            LogicalType::Vector { .. } => "Vector",
            LogicalType::Artifact => "Artifact",
            LogicalType::Uuid => "Uuid",
        }
    }

    pub fn text_limit(&self) -> Option<usize> {
        match self {
            LogicalType::Identifier { max_chars, .. }
            | LogicalType::ShortText { max_chars }
            | LogicalType::MediumText { max_chars }
            | LogicalType::LongText { max_chars } => Some(*max_chars),
            _ => None,
        }
    }

    pub fn is_text(&self) -> bool {
        self.text_limit().is_some()
    }

    /// How values of this type are laid out: the one type map (see [`PhysicalType`]).
    pub fn physical(&self) -> PhysicalType {
        match self {
            LogicalType::Identifier { .. }
            | LogicalType::ShortText { .. }
            | LogicalType::MediumText { .. }
            | LogicalType::LongText { .. }
            | LogicalType::Uuid
            | LogicalType::Categorical { base: CategoricalBase::String, .. } => PhysicalType::Text,
            LogicalType::Integer | LogicalType::Duration | LogicalType::Categorical { base: CategoricalBase::Integer, .. } => {
                PhysicalType::Int
            }
            LogicalType::Float => PhysicalType::Float,
            LogicalType::Boolean => PhysicalType::Bool,
            LogicalType::Timestamp => PhysicalType::Timestamp,
            LogicalType::Date => PhysicalType::Date,
            LogicalType::Array { item } => {
                PhysicalType::List(Box::new(item.as_deref().map(LogicalType::physical).unwrap_or(PhysicalType::Json)))
            }
            LogicalType::Json => PhysicalType::Json,
            LogicalType::Vector { dim } => PhysicalType::Vector { dim: *dim },
            LogicalType::Artifact => PhysicalType::Bytes,
        }
    }

    pub fn arrow_type(&self) -> DataType {
        self.physical().arrow_type()
    }

    /// The Postgres type a client sees (catalogs, `hb describe`): the physical
    /// type's, with text kinds spelled `varchar(limit)` so tools show the limit.
    pub fn pg_type(&self) -> String {
        match self {
            LogicalType::Identifier { max_chars, .. }
            | LogicalType::ShortText { max_chars }
            | LogicalType::MediumText { max_chars }
            | LogicalType::LongText { max_chars } => format!("varchar({max_chars})"),
            LogicalType::Categorical { values, base: CategoricalBase::String } => {
                let longest = values.iter().map(|v| json_text(v).chars().count()).max().unwrap_or(1);
                format!("varchar({})", longest.max(1))
            }
            // Postgres spells array types without a length modifier on the item.
            LogicalType::Array { item: Some(item) } if item.physical() == PhysicalType::Text => "varchar[]".into(),
            LogicalType::Uuid => "uuid".into(),
            other => other.physical().pg_type().into(),
        }
    }

    /// Parse any descriptor form of docs/reference.md §1.2: `"short-text"`, `"ShortText"`,
    /// `"vector[3]"`, `"array[integer]"`, or a mapping keyed `type`/`identifier`/`dtype`.
    pub fn parse(descriptor: &Json) -> Result<LogicalType, CatalogError> {
        match descriptor {
            Json::String(s) => Self::parse_str(s),
            Json::Object(map) => Self::parse_map(map),
            other => Err(CatalogError::Type(format!("Unknown logical type descriptor {other}"))),
        }
    }

    pub fn parse_str(text: &str) -> Result<LogicalType, CatalogError> {
        let text = text.trim();
        if let Some(open) = text.find('[') {
            let Some(inner) = text[open + 1..].strip_suffix(']') else {
                return Err(CatalogError::Type(format!("Malformed logical type '{text}'")));
            };
            let head = canonical_type_name(&text[..open])?;
            return match head {
                "vector" => {
                    let dim: usize = inner
                        .trim()
                        .parse()
                        .map_err(|_| CatalogError::Type(format!("Vector dimension must be a positive integer, got '{inner}'")))?;
                    if dim == 0 {
                        return Err(CatalogError::Type("Vector dimension must be positive".into()));
                    }
                    Ok(LogicalType::Vector { dim })
                }
                "array" => Ok(LogicalType::array_of(Self::parse_str(inner)?)),
                "timestamp" => Ok(LogicalType::Timestamp),
                "identifier" => {
                    Ok(LogicalType::Identifier { max_chars: IDENTIFIER_MAX, target_entity: Some(inner.trim().to_string()) })
                }
                other => Err(CatalogError::Type(format!("Logical type '{other}' takes no bracket parameter (in '{text}')"))),
            };
        }
        Self::from_name(canonical_type_name(text)?, &Map::new())
    }

    fn parse_map(map: &Map<String, Json>) -> Result<LogicalType, CatalogError> {
        let name = ["type", "identifier", "dtype"]
            .iter()
            .find_map(|k| map.get(*k))
            .ok_or_else(|| CatalogError::Type("A type mapping needs a 'type' key".into()))?;
        match name {
            Json::String(s) if s.contains('[') => Self::parse_str(s),
            Json::String(s) => Self::from_name(canonical_type_name(s)?, map),
            Json::Object(inner) => Self::parse_map(inner),
            other => Err(CatalogError::Type(format!("Unknown logical type descriptor {other}"))),
        }
    }

    fn from_name(name: &str, opts: &Map<String, Json>) -> Result<LogicalType, CatalogError> {
        let max = |default: usize| -> Result<usize, CatalogError> {
            match opts.get("max_chars") {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .map(|n| n as usize)
                    .ok_or_else(|| CatalogError::Type(format!("max_chars must be a positive integer, got {v}"))),
            }
        };
        Ok(match name {
            "identifier" => LogicalType::Identifier {
                max_chars: max(IDENTIFIER_MAX)?,
                target_entity: opts.get("target_entity").and_then(|v| v.as_str()).map(String::from),
            },
            "short-text" => LogicalType::ShortText { max_chars: max(SHORT_TEXT_MAX)? },
            "medium-text" => LogicalType::MediumText { max_chars: max(MEDIUM_TEXT_MAX)? },
            "long-text" => LogicalType::LongText { max_chars: max(LONG_TEXT_MAX)? },
            "integer" => LogicalType::Integer,
            "float" => LogicalType::Float,
            "boolean" => LogicalType::Boolean,
            "timestamp" => LogicalType::Timestamp,
            "duration" => LogicalType::Duration,
            "date" => LogicalType::Date,
            "json" => LogicalType::Json,
            "artifact" => LogicalType::Artifact,
            "uuid" => LogicalType::Uuid,
            "vector" => {
                let dim = opts.get("dim").and_then(|v| v.as_u64()).filter(|d| *d > 0).ok_or_else(|| {
                    CatalogError::Type("Vector needs a positive 'dim' (write 'vector[3]' or {type: vector, dim: 3})".into())
                })?;
                LogicalType::Vector { dim: dim as usize }
            }
            "array" => LogicalType::Array {
                item: match opts.get("item_type") {
                    None | Some(Json::Null) => None,
                    Some(d) => Some(Box::new(LogicalType::parse(d)?)),
                },
            },
            "categorical" => {
                let values = opts
                    .get("values")
                    .and_then(|v| v.as_array())
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .ok_or_else(|| CatalogError::Type("Categorical needs a non-empty 'values' list".into()))?;
                let base = match opts.get("base").and_then(|v| v.as_str()) {
                    None | Some("string") => CategoricalBase::String,
                    Some("integer") => CategoricalBase::Integer,
                    Some(other) => {
                        return Err(CatalogError::Type(format!("Categorical base must be 'string' or 'integer', got '{other}'")));
                    }
                };
                for v in &values {
                    let ok = match base {
                        CategoricalBase::String => v.is_string(),
                        CategoricalBase::Integer => v.is_i64(),
                    };
                    if !ok {
                        return Err(CatalogError::Type(format!("Categorical value {v} does not match base")));
                    }
                }
                LogicalType::Categorical { values, base }
            }
            other => return Err(CatalogError::Type(format!("Unknown logical type '{other}'"))),
        })
    }

    /// The descriptor's canonical JSON form (`to_dict` of docs/reference.md §1.2).
    pub fn to_json(&self) -> Json {
        match self {
            LogicalType::Identifier { max_chars, target_entity } => {
                let mut m = json!({"type": "identifier", "max_chars": max_chars});
                if let Some(t) = target_entity {
                    m["target_entity"] = json!(t);
                }
                m
            }
            LogicalType::ShortText { max_chars }
            | LogicalType::MediumText { max_chars }
            | LogicalType::LongText { max_chars } => json!({"type": self.type_id(), "max_chars": max_chars}),
            LogicalType::Timestamp => json!({"type": "timestamp", "unit": "ms"}),
            LogicalType::Categorical { values, base } => json!({
                "type": "categorical",
                "values": values,
                "base": match base { CategoricalBase::String => "string", CategoricalBase::Integer => "integer" },
            }),
            LogicalType::Array { item } => {
                json!({"type": "array", "item_type": item.as_ref().map(|t| t.to_json())})
            }
            LogicalType::Vector { dim } => json!({"type": "vector", "dim": dim}),
            other => json!({"type": other.type_id()}),
        }
    }

    /// Validate and coerce one value, returning its canonical JSON form. Used for
    /// names, ids, defaults and patches; batches go through [`ColumnBuilder`].
    pub fn coerce(&self, value: &Json) -> Result<Json, String> {
        let mut builder = ColumnBuilder::new(self, 1);
        builder.push(value)?;
        let array = builder.finish();
        Ok(crate::value::array_value(array.as_ref(), 0, self))
    }
}

/// Map the accepted spellings (class names, aliases, case) to the identifier.
fn canonical_type_name(name: &str) -> Result<&'static str, CatalogError> {
    let key: String = name.trim().chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
    Ok(match key.as_str() {
        "identifier" => "identifier",
        "shorttext" => "short-text",
        "mediumtext" => "medium-text",
        "longtext" => "long-text",
        "integer" => "integer",
        "float" => "float",
        "boolean" => "boolean",
        "timestamp" => "timestamp",
        "duration" | "interval" => "duration",
        "date" => "date",
        "categorical" => "categorical",
        "array" => "array",
        "json" => "json",
        "vector" => "vector",
        "artifact" => "artifact",
        "uuid" => "uuid",
        _ => return Err(CatalogError::Type(format!("Unknown logical type '{}'", name.trim()))),
    })
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Describe a JSON value in an error message, shortened so a 1 MB string does not
/// flood a log.
pub fn describe_value(v: &Json) -> String {
    let text = match v {
        Json::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        let head: String = text.chars().take(77).collect();
        format!("{head}...")
    } else {
        text
    }
}

/// An Arrow builder for one column of one logical type, the one builder every
/// door and backend fills: `push` validates and coerces a JSON value (writes),
/// `push_stored` lays out a value a backend hands back (reads), `finish` yields
/// the array.
pub struct ColumnBuilder {
    ty: LogicalType,
    inner: Inner,
    /// The Arrow type `finish` casts to, for result columns narrower than
    /// their layout (see [`ColumnBuilder::for_arrow`]).
    cast_to: Option<DataType>,
}

/// A value as a SQL backend hands it back: the value classes SQLite and Postgres
/// return. Stored values were validated on the way in; reading one back only
/// lays it out.
#[derive(Debug, Clone, Copy)]
pub enum Stored<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// Days since 1970-01-01.
    Date(i32),
    /// Epoch milliseconds.
    Timestamp(i64),
    Floats(&'a [f32]),
    Json(&'a Json),
}

enum Inner {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMillisecondBuilder),
    Date(Date32Builder),
    Bin(BinaryBuilder),
    Vector(FixedSizeListBuilder<Float32Builder>),
    List(ListBuilder<Box<dyn ArrayBuilder>>, Box<LogicalType>),
}

impl ColumnBuilder {
    pub fn new(ty: &LogicalType, capacity: usize) -> Self {
        let inner = match ty {
            LogicalType::Integer | LogicalType::Duration => Inner::Int(Int64Builder::with_capacity(capacity)),
            LogicalType::Float => Inner::Float(Float64Builder::with_capacity(capacity)),
            LogicalType::Boolean => Inner::Bool(BooleanBuilder::with_capacity(capacity)),
            LogicalType::Timestamp => Inner::Ts(TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC")),
            LogicalType::Date => Inner::Date(Date32Builder::with_capacity(capacity)),
            LogicalType::Categorical { base: CategoricalBase::Integer, .. } => Inner::Int(Int64Builder::with_capacity(capacity)),
            LogicalType::Artifact => Inner::Bin(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            LogicalType::Vector { dim } => Inner::Vector(
                FixedSizeListBuilder::with_capacity(Float32Builder::with_capacity(capacity * dim), *dim as i32, capacity)
                    .with_field(Arc::new(Field::new("item", DataType::Float32, true))),
            ),
            LogicalType::Array { item } => {
                let item_ty = item.as_deref().cloned().unwrap_or(LogicalType::Json);
                let values = ColumnBuilder::new(&item_ty, capacity).into_dyn();
                Inner::List(
                    ListBuilder::new(values).with_field(Arc::new(Field::new("item", item_ty.arrow_type(), true))),
                    Box::new(item_ty),
                )
            }
            _ => Inner::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
        };
        ColumnBuilder { ty: ty.clone(), inner, cast_to: None }
    }

    /// A builder for a result column that only its Arrow type describes (a
    /// federated statement's aggregates and expressions): the layout's logical
    /// type, cast at `finish` where the Arrow type is narrower (Int32, Float32).
    /// None for Arrow types no layout holds.
    pub fn for_arrow(arrow: &DataType, capacity: usize) -> Option<Self> {
        let ty = match arrow {
            DataType::Utf8 => LogicalType::LongText { max_chars: usize::MAX },
            DataType::Int64 | DataType::Int32 | DataType::Int16 => LogicalType::Integer,
            DataType::Float64 | DataType::Float32 => LogicalType::Float,
            DataType::Boolean => LogicalType::Boolean,
            DataType::Date32 => LogicalType::Date,
            DataType::Timestamp(TimeUnit::Millisecond, _) => LogicalType::Timestamp,
            DataType::Binary => LogicalType::Artifact,
            DataType::FixedSizeList(item, dim) if item.data_type() == &DataType::Float32 && *dim > 0 => {
                LogicalType::Vector { dim: *dim as usize }
            }
            _ => return None,
        };
        let mut builder = ColumnBuilder::new(&ty, capacity);
        if &ty.arrow_type() != arrow {
            builder.cast_to = Some(arrow.clone());
        }
        Some(builder)
    }

    fn into_dyn(self) -> Box<dyn ArrayBuilder> {
        match self.inner {
            Inner::Str(b) => Box::new(b),
            Inner::Int(b) => Box::new(b),
            Inner::Float(b) => Box::new(b),
            Inner::Bool(b) => Box::new(b),
            Inner::Ts(b) => Box::new(b),
            Inner::Date(b) => Box::new(b),
            Inner::Bin(b) => Box::new(b),
            Inner::Vector(b) => Box::new(b),
            Inner::List(b, _) => Box::new(b),
        }
    }

    pub fn push_null(&mut self) {
        match &mut self.inner {
            Inner::Str(b) => b.append_null(),
            Inner::Int(b) => b.append_null(),
            Inner::Float(b) => b.append_null(),
            Inner::Bool(b) => b.append_null(),
            Inner::Ts(b) => b.append_null(),
            Inner::Date(b) => b.append_null(),
            Inner::Bin(b) => b.append_null(),
            Inner::Vector(b) => {
                let dim = b.value_length() as usize;
                for _ in 0..dim {
                    b.values().append_null();
                }
                b.append(false)
            }
            Inner::List(b, _) => b.append(false),
        }
    }

    /// Validate `value` against the column's type and append it. JSON null appends
    /// a NULL; whether NULL is allowed is the caller's rule (required fields).
    pub fn push(&mut self, value: &Json) -> Result<(), String> {
        if value.is_null() {
            self.push_null();
            return Ok(());
        }
        let ty = &self.ty;
        match &mut self.inner {
            Inner::Str(b) => {
                let text = check_text(ty, value)?;
                b.append_value(text.as_ref());
            }
            Inner::Int(b) => b.append_value(coerce_int(ty, value)?),
            Inner::Float(b) => b.append_value(coerce_float(value)?),
            Inner::Bool(b) => match coerce_bool(value)? {
                Some(v) => b.append_value(v),
                None => b.append_null(),
            },
            Inner::Ts(b) => b.append_value(coerce_timestamp(value)?),
            Inner::Date(b) => b.append_value(coerce_date(value)?),
            Inner::Bin(b) => b.append_value(coerce_bytes(value)?),
            Inner::Vector(b) => {
                let LogicalType::Vector { dim } = ty else { unreachable!("vector builder has vector type") };
                let expects = || format!("Vector[{dim}] expects a list of numbers, got {}", describe_value(value));
                // pgvector's text form '[1,2,3]' (or an array's '{1,2,3}'), as
                // a driver's text parameter or a JSON string carries it.
                let parsed: Vec<Json>;
                let items = match value {
                    Json::String(text) => {
                        parsed = vector_numbers(text).ok_or_else(expects)?.into_iter().map(|f| json!(f)).collect();
                        &parsed
                    }
                    other => other.as_array().ok_or_else(expects)?,
                };
                if items.len() != *dim {
                    return Err(format!("Vector[{dim}] received dimension {}", items.len()));
                }
                // Validate every item before appending any, so a bad item leaves the
                // builder unchanged.
                let mut floats = Vec::with_capacity(items.len());
                for item in items {
                    let f = item
                        .as_f64()
                        .ok_or_else(|| format!("Vector[{dim}] items must be numbers, got {}", describe_value(item)))?;
                    floats.push(f as f32);
                }
                b.values().append_slice(&floats);
                b.append(true);
            }
            Inner::List(b, item_ty) => {
                let items = value.as_array().ok_or_else(|| format!("Array expects a list, got {}", describe_value(value)))?;
                // Check every item before appending any: an invalid item must not
                // leave a half-written list behind.
                for item in items {
                    if !item.is_null() {
                        check_scalar(item_ty, item)?;
                    }
                }
                let values = b.values();
                for item in items {
                    append_dyn(values.as_mut(), item_ty, item)?;
                }
                b.append(true);
            }
        }
        Ok(())
    }

    /// Lay out a value read back from a backend. A value of a class the column
    /// cannot hold reads as NULL; text that must parse (a date, a JSON list) and
    /// does not is an error.
    pub fn push_stored(&mut self, value: Stored<'_>) -> Result<(), String> {
        if matches!(value, Stored::Null) {
            self.push_null();
            return Ok(());
        }
        if let Inner::List(..) = self.inner {
            // Lists come back as JSON (Postgres arrays and jsonb) or JSON text (SQLite).
            return match value {
                Stored::Json(v) => self.push(v),
                Stored::Text(t) => {
                    let parsed: Json = serde_json::from_str(t).map_err(|e| e.to_string())?;
                    self.push(&parsed)
                }
                _ => {
                    self.push_null();
                    Ok(())
                }
            };
        }
        match &mut self.inner {
            Inner::Str(b) => match value {
                Stored::Text(t) => b.append_value(t),
                Stored::Json(v) => b.append_value(v.to_string()),
                Stored::Int(i) => b.append_value(i.to_string()),
                Stored::Float(f) => b.append_value(f.to_string()),
                Stored::Bool(x) => b.append_value(if x { "true" } else { "false" }),
                Stored::Bytes(x) => b.append_value(String::from_utf8_lossy(x)),
                _ => b.append_null(),
            },
            Inner::Int(b) => b.append_option(match value {
                Stored::Int(i) | Stored::Timestamp(i) => Some(i),
                Stored::Float(f) => Some(f as i64),
                Stored::Bool(x) => Some(x as i64),
                Stored::Text(t) => t.trim().parse().ok(),
                _ => None,
            }),
            Inner::Float(b) => b.append_option(match value {
                Stored::Float(f) => Some(f),
                Stored::Int(i) => Some(i as f64),
                Stored::Text(t) => t.trim().parse().ok(),
                _ => None,
            }),
            Inner::Bool(b) => b.append_option(match value {
                Stored::Bool(x) => Some(x),
                Stored::Int(i) => Some(i != 0),
                Stored::Float(f) => Some(f != 0.0),
                _ => None,
            }),
            Inner::Ts(b) => b.append_option(match value {
                Stored::Timestamp(ms) | Stored::Int(ms) => Some(ms),
                Stored::Float(f) => Some(f as i64),
                _ => None,
            }),
            Inner::Date(b) => match value {
                Stored::Date(days) => b.append_value(days),
                // SQLite keeps dates as ISO text.
                Stored::Text(t) => b.append_value(coerce_date(&Json::String(t.to_string()))?),
                _ => b.append_null(),
            },
            Inner::Bin(b) => match value {
                Stored::Bytes(x) => b.append_value(x),
                Stored::Text(t) => b.append_value(t.as_bytes()),
                _ => b.append_null(),
            },
            Inner::Vector(b) => {
                let dim = b.value_length() as usize;
                match value {
                    Stored::Floats(v) if v.len() == dim => {
                        b.values().append_slice(v);
                        b.append(true);
                    }
                    // SQLite keeps vectors as little-endian f32 blobs.
                    Stored::Bytes(x) if x.len() == dim * 4 => {
                        for chunk in x.chunks_exact(4) {
                            b.values().append_value(f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
                        }
                        b.append(true);
                    }
                    _ => {
                        for _ in 0..dim {
                            b.values().append_null();
                        }
                        b.append(false);
                    }
                }
            }
            Inner::List(..) => unreachable!("lists are read above"),
        }
        Ok(())
    }

    pub fn finish(self) -> ArrayRef {
        let cast_to = self.cast_to.clone();
        let mut b = self.into_dyn();
        let array = b.finish();
        match cast_to {
            // These casts (wide integers and floats to narrow ones) cannot fail;
            // a value out of range becomes NULL.
            Some(target) => arrow::compute::cast(&array, &target).unwrap_or(array),
            None => array,
        }
    }
}

/// Append an already-coerced value to a type-erased builder (list items).
fn append_dyn(builder: &mut dyn ArrayBuilder, ty: &LogicalType, value: &Json) -> Result<(), String> {
    macro_rules! down {
        ($t:ty) => {
            builder
                .as_any_mut()
                .downcast_mut::<$t>()
                .ok_or_else(|| format!("internal: list item builder for {}", ty.type_id()))?
        };
    }
    let null = value.is_null();
    match ty.arrow_type() {
        DataType::Utf8 => {
            let b = down!(StringBuilder);
            if null { b.append_null() } else { b.append_value(check_text(ty, value)?.as_ref()) }
        }
        DataType::Int64 => {
            let b = down!(Int64Builder);
            if null { b.append_null() } else { b.append_value(coerce_int(ty, value)?) }
        }
        DataType::Float64 => {
            let b = down!(Float64Builder);
            if null { b.append_null() } else { b.append_value(coerce_float(value)?) }
        }
        DataType::Boolean => {
            let b = down!(BooleanBuilder);
            match if null { None } else { coerce_bool(value)? } {
                Some(v) => b.append_value(v),
                None => b.append_null(),
            }
        }
        DataType::Timestamp(..) => {
            let b = down!(TimestampMillisecondBuilder);
            if null { b.append_null() } else { b.append_value(coerce_timestamp(value)?) }
        }
        DataType::Date32 => {
            let b = down!(Date32Builder);
            if null { b.append_null() } else { b.append_value(coerce_date(value)?) }
        }
        DataType::Binary => {
            let b = down!(BinaryBuilder);
            if null { b.append_null() } else { b.append_value(coerce_bytes(value)?) }
        }
        other => return Err(format!("Array items of type {} ({other}) are not supported", ty.type_id())),
    }
    Ok(())
}

/// Validate a scalar (list item) without building anything.
fn check_scalar(ty: &LogicalType, value: &Json) -> Result<(), String> {
    match ty.arrow_type() {
        DataType::Utf8 => check_text(ty, value).map(|_| ()),
        DataType::Int64 => coerce_int(ty, value).map(|_| ()),
        DataType::Float64 => coerce_float(value).map(|_| ()),
        DataType::Boolean => coerce_bool(value).map(|_| ()),
        DataType::Timestamp(..) => coerce_timestamp(value).map(|_| ()),
        DataType::Date32 => coerce_date(value).map(|_| ()),
        DataType::Binary => coerce_bytes(value).map(|_| ()),
        other => Err(format!("Array items of type {} ({other}) are not supported", ty.type_id())),
    }
}

/// A one-dimensional Postgres array literal (`{a,"b c",NULL}`, `{1,2.5}`)
/// as the JSON list the write path takes for a field of type `ty` (an Array
/// or a Vector): elements of a text array stay text (`{1,2}` into `text[]`
/// is `["1", "2"]`), those of other arrays are numbers where they read as
/// numbers (the write path coerces the rest by the item type); an unquoted
/// NULL is null. None when `text` is not in braces.
pub fn pg_array_json(text: &str, ty: &LogicalType) -> Option<Json> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let text_items = matches!(ty, LogicalType::Array { item: Some(item) } if item.physical() == PhysicalType::Text);
    Some(Json::Array(pg_array_elements(inner, text_items)))
}

/// Elements of a one-dimensional Postgres array literal (without braces).
fn pg_array_elements(inner: &str, text_items: bool) -> Vec<Json> {
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return out;
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut value = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let value = if quoted { value } else { value.trim().to_string() };
        out.push(if !quoted && value.eq_ignore_ascii_case("null") {
            Json::Null
        } else if !quoted && !text_items {
            value.parse::<i64>().map(Json::from).or_else(|_| value.parse::<f64>().map(Json::from)).unwrap_or(Json::String(value))
        } else {
            Json::String(value)
        });
        if chars.next().is_none() {
            break;
        }
    }
    out
}

/// Validate text (ShortText, Identifier, Categorical, Json ...) and return it
/// without copying where the input is already text.
pub fn check_text<'a>(ty: &LogicalType, value: &'a Json) -> Result<Cow<'a, str>, String> {
    match ty {
        LogicalType::Json => return Ok(Cow::Owned(coerce_json_text(value))),
        LogicalType::Uuid => {
            return match value {
                Json::String(s) if is_canonical_uuid(s) => Ok(Cow::Borrowed(s.as_str())),
                Json::String(s) => canonical_uuid(s).map(Cow::Owned).ok_or_else(|| invalid_uuid(value)),
                _ => Err(invalid_uuid(value)),
            };
        }
        LogicalType::Categorical { values, .. } => {
            if values.iter().any(|v| v == value) {
                return Ok(Cow::Owned(json_text(value)));
            }
            let choices: Vec<String> = values.iter().map(|v| format!("'{}'", json_text(v))).collect();
            return Err(format!("Categorical value {} is not one of ({})", describe_value(value), choices.join(", ")));
        }
        _ => {}
    }
    let text: Cow<'a, str> = match value {
        Json::String(s) => Cow::Borrowed(s.as_str()),
        Json::Number(n) => Cow::Owned(n.to_string()),
        Json::Bool(b) => Cow::Owned(b.to_string()),
        other => {
            return Err(format!(
                "{} expects text, got {}",
                ty.class_name(),
                if other.is_array() { "a list" } else { "an object" }
            ));
        }
    };
    check_text_limits(ty, &text)?;
    Ok(text)
}

/// The numbers of a vector written as text, `[1, -2.5, 3e-2]` (pgvector) or
/// `{1,-2.5,3e-2}` (a Postgres array); None if it is neither, or holds a
/// number that is not finite.
pub fn vector_numbers(text: &str) -> Option<Vec<f64>> {
    let t = text.trim();
    let inner = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')).or_else(|| t.strip_prefix('{')?.strip_suffix('}'))?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|n| n.trim().parse::<f64>().ok().filter(|f| f.is_finite())).collect()
}

/// Postgres' message for text that is no UUID.
fn invalid_uuid(value: &Json) -> String {
    format!("invalid input syntax for type uuid: {}", describe_value(value))
}

/// Whether `text` is a UUID in its canonical form (as [`LogicalType::Uuid`]
/// stores it), so a column of them can be kept as it is.
pub fn is_canonical_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// A UUID in any form Postgres reads, in the canonical one: 32 hex digits
/// (either case), optionally in braces, with a hyphen allowed after any
/// group of four digits but the last.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let t = text.trim();
    let t = match (t.strip_prefix('{'), t.ends_with('}')) {
        (Some(inner), true) => &inner[..inner.len() - 1],
        (None, false) => t,
        _ => return None,
    };
    let mut digits = String::with_capacity(36);
    let mut count = 0;
    let mut after_hyphen = false;
    for (i, c) in t.chars().enumerate() {
        if c == '-' {
            // Only between groups of four digits, never first, last or twice.
            if count == 0 || count % 4 != 0 || after_hyphen || i + 1 == t.len() {
                return None;
            }
            after_hyphen = true;
            continue;
        }
        if !c.is_ascii_hexdigit() || count == 32 {
            return None;
        }
        if matches!(count, 8 | 12 | 16 | 20) {
            digits.push('-');
        }
        digits.push(c.to_ascii_lowercase());
        count += 1;
        after_hyphen = false;
    }
    (count == 32).then_some(digits)
}

/// A UUID's 16 bytes (its binary form on the wire), from any text form
/// [`canonical_uuid`] reads.
pub fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let parsed =
        if is_canonical_uuid(text) { uuid::Uuid::parse_str(text) } else { uuid::Uuid::parse_str(&canonical_uuid(text)?) };
    parsed.ok().map(|u| *u.as_bytes())
}

/// The canonical text of a UUID given as its 16 bytes.
pub fn uuid_from_bytes(bytes: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// A new random (version 4) UUID in the canonical form.
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// The rules a text of a text type obeys: its character limit, and an
/// Identifier is never empty. (JSON values and whole Arrow columns both.)
pub fn check_text_limits(ty: &LogicalType, text: &str) -> Result<(), String> {
    let limit = ty.text_limit().unwrap_or(usize::MAX);
    // Byte length bounds the character count from above: skip counting when short.
    if text.len() > limit && text.chars().count() > limit {
        return Err(format!("{} exceeds {limit} characters", ty.class_name()));
    }
    if matches!(ty, LogicalType::Identifier { .. }) && text.is_empty() {
        return Err("Identifier cannot be empty".into());
    }
    Ok(())
}

/// An Integer written as text: trimmed, then Rust's integer syntax.
pub fn parse_int_text(s: &str) -> Result<i64, String> {
    s.trim().parse::<i64>().map_err(|_| format!("invalid literal for Integer: {}", describe_value(&Json::String(s.to_string()))))
}

/// A Float written as text: trimmed, then Rust's float syntax.
pub fn parse_float_text(s: &str) -> Result<f64, String> {
    s.trim().parse::<f64>().map_err(|_| format!("could not convert string to float: '{s}'"))
}

/// A Json value's stored text. A string that holds a JSON document is parsed
/// (docs/reference.md §1.2: "a string is parsed as JSON"); any other string is a JSON string.
fn coerce_json_text(value: &Json) -> String {
    if let Json::String(s) = value {
        let trimmed = s.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            if let Ok(parsed) = serde_json::from_str::<Json>(s) {
                return parsed.to_string();
            }
        }
    }
    value.to_string()
}

fn coerce_int(ty: &LogicalType, value: &Json) -> Result<i64, String> {
    let n = match value {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                i
            } else if let Some(f) = n.as_f64() {
                if !f.is_finite() || f.abs() >= 9.2e18 {
                    return Err(format!("Integer out of range: {f}"));
                }
                f.trunc() as i64
            } else {
                return Err(format!("Integer out of range: {n}"));
            }
        }
        Json::String(s) => parse_int_text(s)?,
        other => return Err(format!("Integer expects a number, got {}", describe_value(other))),
    };
    if let LogicalType::Categorical { values, .. } = ty {
        if !values.iter().any(|v| v.as_i64() == Some(n)) {
            let choices: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            return Err(format!("Categorical value {n} is not one of ({})", choices.join(", ")));
        }
    }
    if matches!(ty, LogicalType::Duration) && n < 0 {
        return Err(format!("Duration cannot be negative, got {n}"));
    }
    Ok(n)
}

fn coerce_float(value: &Json) -> Result<f64, String> {
    match value {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("could not convert to float: {n}")),
        Json::String(s) => parse_float_text(s),
        other => Err(format!("Float expects a number, got {}", describe_value(other))),
    }
}

/// Boolean rules of docs/reference.md §1.2: string aliases, 0/1, null-like strings.
fn coerce_bool(value: &Json) -> Result<Option<bool>, String> {
    match value {
        Json::Bool(b) => Ok(Some(*b)),
        Json::Number(n) => match n.as_f64() {
            Some(f) if f == 0.0 => Ok(Some(false)),
            Some(f) if f == 1.0 => Ok(Some(true)),
            _ => Err(format!("Cannot coerce {n} to Boolean")),
        },
        Json::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "off" | "" | "f" | "n" => Ok(Some(false)),
            "null" | "none" | "nil" | "nan" | "na" => Ok(None),
            _ => Err(format!("Cannot coerce '{s}' to Boolean")),
        },
        other => Err(format!("Cannot coerce {} to Boolean", describe_value(other))),
    }
}

/// Epoch milliseconds, UTC. Accepts epoch numbers (ms), ISO 8601 text (a trailing
/// `Z` or an offset; naive text is UTC) and plain dates (midnight UTC).
pub fn coerce_timestamp(value: &Json) -> Result<i64, String> {
    let ms = match value {
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.is_finite() => f.trunc() as i64,
            _ => return Err(format!("Timestamp out of range: {n}")),
        },
        Json::String(s) => parse_timestamp_text(s.trim())
            .ok_or_else(|| format!("Timestamp expects ISO 8601 text or epoch milliseconds, got '{s}'"))?,
        Json::Bool(_) => return Err("Timestamp does not accept a boolean".into()),
        other => return Err(format!("Timestamp expects ISO 8601 text or epoch milliseconds, got {}", describe_value(other))),
    };
    if !(TIMESTAMP_MIN_MS..=TIMESTAMP_MAX_MS).contains(&ms) {
        return Err(format!("Timestamp {ms} ms is outside years 1..9999"));
    }
    Ok(ms)
}

fn parse_timestamp_text(s: &str) -> Option<i64> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    // Postgres prints "2024-01-02 03:04:05+00"; accept a space and short offsets too.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(Utc.from_utc_datetime(&dt).timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Utc.from_utc_datetime(&dt).timestamp_millis())
}

/// Days since 1970-01-01. Accepts `YYYY-MM-DD`, or a timestamp text, converted
/// to UTC first. Numbers are rejected: a bare number is not a date.
pub fn coerce_date(value: &Json) -> Result<i32, String> {
    let Json::String(s) = value else {
        return Err(format!("Date expects 'YYYY-MM-DD' text, got {}", describe_value(value)));
    };
    let s = s.trim();
    let date = match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => d,
        Err(_) => {
            let ms = parse_timestamp_text(s)
                .filter(|_| s.len() > 10)
                .ok_or_else(|| format!("Date expects 'YYYY-MM-DD' text, got '{s}'"))?;
            DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("Date out of range: '{s}'"))?.date_naive()
        }
    };
    Ok(chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE)
}

/// Artifact bytes: text is taken as UTF-8, `{"base64": "..."}` is decoded, a list
/// of byte values is taken as is.
fn coerce_bytes(value: &Json) -> Result<Vec<u8>, String> {
    match value {
        Json::String(s) => Ok(s.as_bytes().to_vec()),
        Json::Object(m) if m.len() == 1 && m.contains_key("base64") => {
            let text = m["base64"].as_str().ok_or("Artifact base64 must be text")?;
            crate::value::base64_decode(text).ok_or_else(|| "Artifact base64 text is not valid base64".to_string())
        }
        Json::Array(items) => items
            .iter()
            .map(|i| i.as_u64().filter(|b| *b <= 255).map(|b| b as u8))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| "Artifact byte lists hold integers 0..=255".to_string()),
        other => Err(format!("Artifact expects text, bytes or {{\"base64\": ...}}, got {}", describe_value(other))),
    }
}
