//! Entities as Rust types.
//!
//! `#[derive(Entity)]` (heavenbase-derive, re-exported here under the default
//! `derive` feature) implements [`Entity`] for a struct: its definition (names,
//! logical types, required = not `Option`, doc comments as descriptions,
//! placement attributes), typed field references for filters, and the
//! conversions between a slice of structs and one Arrow batch. Writes go
//! straight from the structs into Arrow columns and through
//! [`Workspace::write_batch`], with no JSON in between; reads come back from
//! Arrow batches. `sql_typed` deserializes any query's rows into any serde type.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

pub use chrono;
pub use datafusion::arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::query::{Filter, FilterOp, Query};
use crate::workspace::Workspace;
use crate::{Error, Result, WriteMode};

#[cfg(feature = "derive")]
pub use heavenbase_derive::Entity;

/// A Rust type that is an entity. Derive it (`#[derive(heavenbase::Entity)]`);
/// implementing it by hand is possible but the derive keeps the definition,
/// the columns and the conversions in step.
pub trait Entity: Sized {
    /// The entity id: `#[hb(entity = "…")]`, or the struct's name in the
    /// reference's kebab form (`OakDesk` → `oak-desk`).
    const ENTITY_ID: &'static str;
    /// The columns the struct holds, in field order.
    const COLUMNS: &'static [&'static str];
    /// Typed references to the fields (`Note::fields().price.lt(150.0)`).
    type Fields;

    fn entity_def() -> crate::EntityDef;
    fn fields() -> Self::Fields;
    /// The structs as one Arrow batch with one column per field.
    fn to_batch(items: &[Self]) -> Result<RecordBatch>;
    /// Structs from a batch that has (at least) their columns.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>>;
}

/// A field of a derived struct whose values are `T`, for building filters
/// that are checked against the field's type at compile time.
pub struct Field<T> {
    name: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Field<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Field<T> {}

impl<T> std::fmt::Debug for Field<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Field({})", self.name)
    }
}

impl<T> Field<T> {
    pub const fn new(name: &'static str) -> Self {
        Field { name, _value: PhantomData }
    }
    /// The column name.
    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn is_null(&self) -> Filter {
        Filter::eq(self.name, Json::Null)
    }
    pub fn is_not_null(&self) -> Filter {
        Filter::op(self.name, FilterOp::Ne, Json::Null)
    }
}

impl<T: column::Scalar> Field<T> {
    fn compare(&self, op: FilterOp, value: impl Into<T>) -> Filter {
        Filter::op(self.name, op, value.into().to_json())
    }
    pub fn eq(&self, value: impl Into<T>) -> Filter {
        self.compare(FilterOp::Eq, value)
    }
    pub fn ne(&self, value: impl Into<T>) -> Filter {
        self.compare(FilterOp::Ne, value)
    }
    pub fn lt(&self, value: impl Into<T>) -> Filter {
        self.compare(FilterOp::Lt, value)
    }
    pub fn le(&self, value: impl Into<T>) -> Filter {
        self.compare(FilterOp::Lte, value)
    }
    pub fn gt(&self, value: impl Into<T>) -> Filter {
        self.compare(FilterOp::Gt, value)
    }
    pub fn ge(&self, value: impl Into<T>) -> Filter {
        self.compare(FilterOp::Gte, value)
    }
    pub fn is_in<V: Into<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        let values: Vec<Json> = values.into_iter().map(|v| v.into().to_json()).collect();
        Filter::op(self.name, FilterOp::In, Json::Array(values))
    }
}

impl Field<String> {
    /// A full-text match on a field indexed for search (ranked by BM25), a
    /// case-insensitive substring test on others (`Filter::matches`).
    pub fn matches(&self, query: &str) -> Filter {
        Filter::matches(self.name, query)
    }
    pub fn contains(&self, text: &str) -> Filter {
        Filter::op(self.name, FilterOp::Contains, text)
    }
    pub fn starts_with(&self, prefix: &str) -> Filter {
        Filter::op(self.name, FilterOp::StartsWith, prefix)
    }
    pub fn like(&self, pattern: &str) -> Filter {
        Filter::op(self.name, FilterOp::Like, pattern)
    }
}

impl<T: column::Scalar> Field<Vec<T>> {
    /// The array holds `value`.
    pub fn array_contains(&self, value: impl Into<T>) -> Filter {
        Filter::op(self.name, FilterOp::ArrayContains, value.into().to_json())
    }
}

/// A field reference or a column name, where a query orders by a field.
pub trait FieldName {
    fn field_name(&self) -> &str;
}
impl<T> FieldName for Field<T> {
    fn field_name(&self) -> &str {
        self.name
    }
}
impl FieldName for &str {
    fn field_name(&self) -> &str {
        self
    }
}

/// A query whose rows come back as `E` (`ws.query_typed::<Note>()?`). It is the
/// builder of [`Query`] with the struct's columns selected; `.fetch().await`
/// or awaiting it directly gives `Vec<E>`.
pub struct TypedQuery<E> {
    query: Query,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> TypedQuery<E> {
    fn new(query: Query) -> Self {
        TypedQuery { query: query.select(E::COLUMNS.iter().copied()), _entity: PhantomData }
    }
    pub fn where_(self, filter: Filter) -> Self {
        self.map(|q| q.where_(filter))
    }
    pub fn order_by(self, field: impl FieldName, desc: bool) -> Self {
        self.map(|q| q.order_by(field.field_name(), desc))
    }
    pub fn limit(self, n: usize) -> Self {
        self.map(|q| q.limit(n))
    }
    pub fn offset(self, n: usize) -> Self {
        self.map(|q| q.offset(n))
    }
    /// The `top_k` rows nearest to `vector` by a vector field (cosine unless
    /// `metric` says `l2` or `dot`), nearest first.
    pub fn near(self, field: Field<Vec<f32>>, vector: Vec<f32>, top_k: Option<usize>, metric: Option<&str>) -> Result<Self> {
        Ok(TypedQuery { query: self.query.near(field.name, vector, top_k, metric)?, _entity: PhantomData })
    }
    /// The `top_k` rows that best match a full-text query on these fields.
    pub fn search(self, fields: &[Field<String>], query: &str, top_k: Option<usize>) -> Result<Self> {
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        Ok(TypedQuery { query: self.query.search(&names, query, top_k)?, _entity: PhantomData })
    }
    /// The untyped builder underneath (explain(), aggregates, JSON).
    pub fn into_query(self) -> Query {
        self.query
    }
    pub async fn fetch(self) -> Result<Vec<E>> {
        let mut out = Vec::new();
        for batch in self.query.execute().await? {
            out.extend(E::from_batch(&batch)?);
        }
        Ok(out)
    }
    fn map(self, f: impl FnOnce(Query) -> Query) -> Self {
        TypedQuery { query: f(self.query), _entity: PhantomData }
    }
}

impl<E: Entity + Send + 'static> IntoFuture for TypedQuery<E> {
    type Output = Result<Vec<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Vec<E>>> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.fetch())
    }
}

impl Workspace {
    /// Register the entity a struct derives (`ws.register_typed::<Note>()`).
    /// The same structure again is a no-op; a changed struct is an error
    /// unless registered with `ws.register(Note::entity_def(), true)`.
    pub async fn register_typed<E: Entity>(&self) -> Result<()> {
        self.register(E::entity_def(), false).await
    }

    /// Insert or fully replace one struct's row; returns its object_id.
    pub async fn upsert_typed<E: Entity>(&self, item: &E) -> Result<String> {
        let mut ids = self.upsert_many_typed(std::slice::from_ref(item)).await?;
        ids.pop().ok_or_else(|| Error::internal("an upsert of one row wrote none"))
    }

    /// Insert or fully replace the structs' rows, as one Arrow batch through
    /// the write path (validated whole: on any error nothing is written);
    /// returns their object_ids in order.
    pub async fn upsert_many_typed<E: Entity>(&self, items: &[E]) -> Result<Vec<String>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.write_batch(E::ENTITY_ID, E::to_batch(items)?, WriteMode::Upsert).await
    }

    /// Insert only: an object_id that exists already is a unique violation.
    pub async fn insert_many_typed<E: Entity>(&self, items: &[E]) -> Result<Vec<String>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.write_batch(E::ENTITY_ID, E::to_batch(items)?, WriteMode::Insert).await
    }

    /// One row by object_id as its struct, or None.
    pub async fn get_typed<E: Entity>(&self, object_id: &str) -> Result<Option<E>> {
        let mut rows = self.query_typed::<E>()?.where_(Filter::eq(crate::catalog::OBJECT_ID, object_id)).limit(1).fetch().await?;
        Ok(rows.pop())
    }

    /// A query over the struct's entity whose rows come back as structs.
    pub fn query_typed<E: Entity>(&self) -> Result<TypedQuery<E>> {
        Ok(TypedQuery::new(self.query(E::ENTITY_ID)?))
    }

    /// Run SQL and deserialize each row into `R` (any `Deserialize` type: a
    /// struct whose fields are named like the columns, a map, a tuple struct
    /// of one column…). Values are as `ws.get` gives them: text, numbers,
    /// booleans, RFC 3339 timestamps, `YYYY-MM-DD` dates, arrays, JSON.
    pub async fn sql_typed<R: DeserializeOwned>(&self, sql: &str) -> Result<Vec<R>> {
        let batches = self.sql(sql).await?;
        let mut out = Vec::new();
        for batch in &batches {
            for row in column::json_rows(batch) {
                let text = Json::Object(row);
                let value = serde_json::from_value(text.clone())
                    .map_err(|e| Error::invalid(format!("a row of `{sql}` does not deserialize: {e} (row {text})")))?;
                out.push(value);
            }
        }
        Ok(out)
    }
}

/// The column conversions the derive's code calls: structs → Arrow arrays of
/// exactly the layout the entity's fields have (so the write path only checks
/// them), and Arrow arrays → values.
pub mod column {
    use std::sync::Arc;

    use chrono::{DateTime, NaiveDate, Utc};
    use datafusion::arrow::array::{
        Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, FixedSizeListArray, Float32Array, Float64Array,
        Int64Array, ListArray, StringArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
    use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit};
    use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
    use heavenbase_catalog::types::LogicalType;
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value as Json};

    use crate::{Error, Result};

    /// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
    const UNIX_EPOCH_FROM_CE: i32 = 719_163;

    /// A Rust type that is one value of a logical type.
    pub trait Scalar: Sized {
        /// The Arrow type of the field's column.
        fn arrow_type() -> DataType;
        /// A column of these values (None is NULL).
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef
        where
            Self: 'a;
        /// The value at a non-null `row` of a column of [`Scalar::arrow_type`].
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String>;
        /// The value as a filter's operand.
        fn to_json(&self) -> Json;
    }

    impl Scalar for String {
        fn arrow_type() -> DataType {
            DataType::Utf8
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            Arc::new(values.map(|v| v.map(String::as_str)).collect::<StringArray>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            Ok(array.as_string::<i32>().value(row).to_string())
        }
        fn to_json(&self) -> Json {
            Json::String(self.clone())
        }
    }

    macro_rules! integer {
        ($($t:ty),*) => {$(
            impl Scalar for $t {
                fn arrow_type() -> DataType {
                    DataType::Int64
                }
                fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
                    Arc::new(values.map(|v| v.map(|v| i64::from(*v))).collect::<Int64Array>())
                }
                fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
                    let v = array.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(row);
                    <$t>::try_from(v).map_err(|_| format!("{v} does not fit in {}", stringify!($t)))
                }
                fn to_json(&self) -> Json {
                    Json::from(*self)
                }
            }
        )*};
    }
    integer!(i8, i16, i32, i64, u8, u16, u32);

    impl Scalar for f64 {
        fn arrow_type() -> DataType {
            DataType::Float64
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            Arc::new(values.map(|v| v.copied()).collect::<Float64Array>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            Ok(array.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(row))
        }
        fn to_json(&self) -> Json {
            Json::from(*self)
        }
    }

    impl Scalar for f32 {
        fn arrow_type() -> DataType {
            DataType::Float64
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            Arc::new(values.map(|v| v.map(|v| f64::from(*v))).collect::<Float64Array>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            Ok(array.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(row) as f32)
        }
        fn to_json(&self) -> Json {
            Json::from(f64::from(*self))
        }
    }

    impl Scalar for bool {
        fn arrow_type() -> DataType {
            DataType::Boolean
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            Arc::new(values.map(|v| v.copied()).collect::<BooleanArray>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            Ok(array.as_boolean().value(row))
        }
        fn to_json(&self) -> Json {
            Json::Bool(*self)
        }
    }

    /// Timestamps are kept to the millisecond: finer digits are dropped.
    impl Scalar for DateTime<Utc> {
        fn arrow_type() -> DataType {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            let array: TimestampMillisecondArray = values.map(|v| v.map(DateTime::timestamp_millis)).collect();
            Arc::new(array.with_timezone("UTC"))
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            let ms = array.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>().value(row);
            DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("{ms} ms is outside the calendar"))
        }
        fn to_json(&self) -> Json {
            Json::String(self.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }
    }

    impl Scalar for NaiveDate {
        fn arrow_type() -> DataType {
            DataType::Date32
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            use chrono::Datelike;
            Arc::new(values.map(|v| v.map(|d| d.num_days_from_ce() - UNIX_EPOCH_FROM_CE)).collect::<Date32Array>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            let days = array.as_primitive::<datafusion::arrow::datatypes::Date32Type>().value(row);
            NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_FROM_CE)
                .ok_or_else(|| format!("day {days} is outside the calendar"))
        }
        fn to_json(&self) -> Json {
            Json::String(self.format("%Y-%m-%d").to_string())
        }
    }

    /// Durations are kept in whole milliseconds (the Duration logical type);
    /// finer digits are dropped, and one past i64::MAX ms is kept as i64::MAX.
    impl Scalar for std::time::Duration {
        fn arrow_type() -> DataType {
            DataType::Int64
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            Arc::new(values.map(|v| v.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))).collect::<Int64Array>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            let ms = array.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(row);
            u64::try_from(ms).map(std::time::Duration::from_millis).map_err(|_| format!("{ms} ms is a negative duration"))
        }
        fn to_json(&self) -> Json {
            Json::from(i64::try_from(self.as_millis()).unwrap_or(i64::MAX))
        }
    }

    /// A JSON document, kept as compact JSON text.
    impl Scalar for Json {
        fn arrow_type() -> DataType {
            DataType::Utf8
        }
        fn build<'a>(values: impl Iterator<Item = Option<&'a Self>>) -> ArrayRef {
            Arc::new(values.map(|v| v.map(|v| v.to_string())).collect::<StringArray>())
        }
        fn read(array: &dyn Array, row: usize) -> std::result::Result<Self, String> {
            let text = array.as_string::<i32>().value(row);
            serde_json::from_str(text).map_err(|e| format!("{e} in JSON text {text:?}"))
        }
        fn to_json(&self) -> Json {
            self.clone()
        }
    }

    pub fn scalar<'a, T: Scalar + 'a, I: Iterator<Item = Option<&'a T>>>(values: I) -> ArrayRef {
        T::build(values)
    }

    pub fn bytes_type() -> DataType {
        DataType::Binary
    }
    pub fn bytes<'a>(values: impl Iterator<Item = Option<&'a Vec<u8>>>) -> ArrayRef {
        Arc::new(values.map(|v| v.map(Vec::as_slice)).collect::<BinaryArray>())
    }

    pub fn vector_type(dim: usize) -> DataType {
        DataType::FixedSizeList(Arc::new(ArrowField::new("item", DataType::Float32, true)), dim as i32)
    }
    /// A vector column. A vector of another length is kept as it is, and the
    /// write path refuses it naming the field and its length.
    pub fn vector<'a>(values: impl Iterator<Item = Option<&'a Vec<f32>>>, dim: usize) -> ArrayRef {
        let values: Vec<Option<&Vec<f32>>> = values.collect();
        if values.iter().flatten().any(|v| v.len() != dim) {
            // A list of the lengths given: coercion reports the bad row.
            return list::<f32, _>(values.into_iter());
        }
        let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<bool>>());
        let mut flat = Vec::with_capacity(values.len() * dim);
        for v in &values {
            match v {
                Some(v) => flat.extend_from_slice(v),
                None => flat.extend(std::iter::repeat_n(0.0, dim)),
            }
        }
        let item = Arc::new(ArrowField::new("item", DataType::Float32, true));
        Arc::new(FixedSizeListArray::new(
            item,
            dim as i32,
            Arc::new(Float32Array::from(flat)),
            (nulls.null_count() > 0).then_some(nulls),
        ))
    }

    pub fn list_type<T: Scalar>() -> DataType {
        DataType::List(Arc::new(ArrowField::new("item", T::arrow_type(), true)))
    }
    pub fn list<'a, T: Scalar + 'a, I: Iterator<Item = Option<&'a Vec<T>>>>(values: I) -> ArrayRef {
        let values: Vec<Option<&Vec<T>>> = values.collect();
        let offsets = OffsetBuffer::from_lengths(values.iter().map(|v| v.map_or(0, |v| v.len())));
        let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<bool>>());
        let items = T::build(values.iter().flatten().flat_map(|v| v.iter()).map(Some));
        Arc::new(ListArray::new(
            Arc::new(ArrowField::new("item", T::arrow_type(), true)),
            offsets,
            items,
            (nulls.null_count() > 0).then_some(nulls),
        ))
    }

    pub fn json_type() -> DataType {
        DataType::Utf8
    }
    /// A `#[hb(json)]` field: each value serialized to JSON text.
    pub fn json<'a, T: Serialize + 'a>(
        values: impl Iterator<Item = Option<&'a T>>,
        entity: &str,
        field: &str,
    ) -> Result<ArrayRef> {
        let texts = values
            .map(|v| v.map(serde_json::to_string).transpose())
            .collect::<std::result::Result<Vec<Option<String>>, _>>()
            .map_err(|e| Error::invalid(format!("{entity}.{field}: the value does not serialize to JSON: {e}")))?;
        Ok(Arc::new(texts.into_iter().collect::<StringArray>()))
    }

    /// The batch of a struct slice: one nullable column per field.
    pub fn batch(entity: &str, columns: Vec<(&'static str, ArrayRef)>, rows: usize) -> Result<RecordBatch> {
        let fields: Vec<ArrowField> =
            columns.iter().map(|(name, array)| ArrowField::new(*name, array.data_type().clone(), true)).collect();
        let arrays = columns.into_iter().map(|(_, array)| array).collect();
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::internal(format!("{entity}: the structs do not make a batch: {e}")))
    }

    /// Reads a batch's columns for the derive's `from_batch`.
    pub struct Reader<'a> {
        entity: &'static str,
        batch: &'a RecordBatch,
        ids: Option<ArrayRef>,
    }

    impl<'a> Reader<'a> {
        pub fn new(entity: &'static str, batch: &'a RecordBatch) -> Self {
            let ids = batch
                .column_by_name(crate::catalog::OBJECT_ID)
                .and_then(|a| datafusion::arrow::compute::cast(a, &DataType::Utf8).ok());
            Reader { entity, batch, ids }
        }

        /// The column named `name`, as `arrow` (cast when the result has
        /// another layout, as SQL results may).
        pub fn column(&self, name: &'static str, arrow: &DataType) -> Result<Column> {
            let array = self.batch.column_by_name(name).ok_or_else(|| {
                Error::invalid(format!("{}: the rows have no column '{name}' to read into the struct", self.entity))
            })?;
            let array = if array.data_type() == arrow {
                array.clone()
            } else {
                datafusion::arrow::compute::cast(array, arrow).map_err(|e| {
                    Error::invalid(format!(
                        "{}.{name}: a column of {} cannot be read as {arrow}: {e}",
                        self.entity,
                        array.data_type()
                    ))
                })?
            };
            Ok(Column { entity: self.entity, field: name, array, ids: self.ids.clone() })
        }
    }

    /// One column of a batch, read row by row into a field's values.
    pub struct Column {
        entity: &'static str,
        field: &'static str,
        array: ArrayRef,
        ids: Option<ArrayRef>,
    }

    impl Column {
        fn error(&self, row: usize, message: &str) -> Error {
            let at = match self.ids.as_ref().filter(|ids| ids.is_valid(row)) {
                Some(ids) => format!("object_id '{}'", ids.as_string::<i32>().value(row)),
                None => format!("row {row}"),
            };
            Error::invalid(format!("{}.{} ({at}): {message}", self.entity, self.field))
        }

        pub fn scalar<T: Scalar>(&self, row: usize) -> Result<Option<T>> {
            if self.array.is_null(row) {
                return Ok(None);
            }
            T::read(self.array.as_ref(), row).map(Some).map_err(|m| self.error(row, &m))
        }

        pub fn bytes(&self, row: usize) -> Result<Option<Vec<u8>>> {
            Ok(self.array.is_valid(row).then(|| self.array.as_binary::<i32>().value(row).to_vec()))
        }

        pub fn vector(&self, row: usize) -> Result<Option<Vec<f32>>> {
            if self.array.is_null(row) {
                return Ok(None);
            }
            let items = self.array.as_fixed_size_list().value(row);
            let items = items.as_primitive::<datafusion::arrow::datatypes::Float32Type>();
            if items.null_count() > 0 {
                return Err(self.error(row, "the vector has a NULL item"));
            }
            Ok(Some(items.values().to_vec()))
        }

        pub fn list<T: Scalar>(&self, row: usize) -> Result<Option<Vec<T>>> {
            if self.array.is_null(row) {
                return Ok(None);
            }
            let items = self.array.as_list::<i32>().value(row);
            (0..items.len())
                .map(|i| {
                    if items.is_null(i) {
                        return Err(self.error(row, &format!("item {i} is NULL")));
                    }
                    T::read(items.as_ref(), i).map_err(|m| self.error(row, &m))
                })
                .collect::<Result<Vec<T>>>()
                .map(Some)
        }

        pub fn json<T: DeserializeOwned>(&self, row: usize) -> Result<Option<T>> {
            if self.array.is_null(row) {
                return Ok(None);
            }
            let text = self.array.as_string::<i32>().value(row);
            serde_json::from_str(text).map(Some).map_err(|e| self.error(row, &format!("{e} in JSON text {text:?}")))
        }

        /// A value for a field that is not an `Option`: NULL is an error.
        pub fn required<T>(&self, value: Option<T>, row: usize) -> Result<T> {
            value.ok_or_else(|| self.error(row, "NULL, and the struct's field is not an Option"))
        }
    }

    /// The rows of any batch as JSON objects, each value as `ws.get` gives it.
    pub fn json_rows(batch: &RecordBatch) -> Vec<Map<String, Json>> {
        let types: Vec<LogicalType> = batch.schema().fields().iter().map(|f| LogicalType::from_arrow(f.data_type())).collect();
        heavenbase_catalog::value::batch_rows(batch, &types)
    }
}
