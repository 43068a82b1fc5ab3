//! Whole Arrow columns validated and coerced to a logical type: the core of the
//! write path (`Workspace::write_batch`). SQL `INSERT`, `COPY` and `hb import`
//! hand over Arrow columns; they are checked here without becoming JSON.
//!
//! - A column already of the type's Arrow type is checked in place (text
//!   limits, empty identifiers, negative durations) and kept without a copy.
//! - A numeric or temporal column of another Arrow type (Int32, Decimal,
//!   Timestamp in nanoseconds, Date64 …) is cast by Arrow, then checked.
//! - Anything else (text into numbers, JSON documents, categoricals, lists,
//!   non-finite floats) is coerced value by value with exactly the rules of
//!   [`ColumnBuilder::push`], so every door gives the same stored value.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type, TimeUnit};

use crate::types::{
    ColumnBuilder, LogicalType, check_text_limits, describe_value, is_canonical_uuid, parse_float_text, parse_int_text,
};
use crate::value::array_value;

/// The first value of a column that cannot be stored: its row (None when the
/// whole column was refused), what was wrong, and the value as a message shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BadValue {
    pub row: Option<usize>,
    pub message: String,
    pub value: Option<String>,
}

impl BadValue {
    fn at(row: usize, message: String, value: String) -> Self {
        BadValue { row: Some(row), message, value: Some(value) }
    }
}

/// `array` as a column of logical type `ty` (Arrow type `ty.arrow_type()`).
pub fn coerce_column(ty: &LogicalType, array: &ArrayRef) -> Result<ArrayRef, BadValue> {
    let target = ty.arrow_type();
    if array.data_type() == &target {
        if let Some(checked) = check_in_place(ty, array)? {
            return Ok(checked);
        }
    } else if let Some(parsed) = parse_numbers(ty, array) {
        if let Some(checked) = check_in_place(ty, &parsed?)? {
            return Ok(checked);
        }
    } else if casts_natively(ty, array.data_type()) {
        let options = CastOptions { safe: false, ..Default::default() };
        let cast = cast_with_options(array, &target, &options).map_err(|e| BadValue {
            row: None,
            message: format!("cannot store {} as {}: {e}", array.data_type(), ty.class_name()),
            value: None,
        })?;
        if let Some(checked) = check_in_place(ty, &cast)? {
            return Ok(checked);
        }
    }
    by_value(ty, array)
}

/// Text into Integer, Duration or Float columns (COPY, CSV files), parsed by
/// the same functions the JSON rules use for a string.
fn parse_numbers(ty: &LogicalType, array: &ArrayRef) -> Option<Result<ArrayRef, BadValue>> {
    let text = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>(),
        _ => return None,
    };
    let bad = |row: usize, s: &str, message: String| BadValue::at(row, message, describe_value(&serde_json::json!(s)));
    match ty {
        LogicalType::Integer | LogicalType::Duration => {
            let mut b = Int64Builder::with_capacity(text.len());
            for (row, value) in text.iter().enumerate() {
                match value {
                    None => b.append_null(),
                    Some(s) => match parse_int_text(s) {
                        Ok(n) => b.append_value(n),
                        Err(m) => return Some(Err(bad(row, s, m))),
                    },
                }
            }
            Some(Ok(Arc::new(b.finish())))
        }
        LogicalType::Float => {
            let mut b = Float64Builder::with_capacity(text.len());
            for (row, value) in text.iter().enumerate() {
                match value {
                    None => b.append_null(),
                    Some(s) => match parse_float_text(s) {
                        Ok(f) => b.append_value(f),
                        Err(m) => return Some(Err(bad(row, s, m))),
                    },
                }
            }
            Some(Ok(Arc::new(b.finish())))
        }
        _ => None,
    }
}

/// Whether Arrow's cast gives the same value the JSON rules would: numbers
/// into numbers, and times into times. Text, booleans and lists are coerced
/// value by value (Arrow's text parsing and integer-to-boolean rules differ
/// from the reference's).
fn casts_natively(ty: &LogicalType, from: &DataType) -> bool {
    let numeric = from.is_integer() || from.is_floating() || matches!(from, DataType::Decimal128(..) | DataType::Decimal256(..));
    let temporal = matches!(from, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64);
    let fits = match ty {
        LogicalType::Integer | LogicalType::Duration | LogicalType::Float => numeric,
        LogicalType::Timestamp | LogicalType::Date => temporal,
        _ => false,
    };
    fits && can_cast_types(from, &ty.arrow_type())
}

/// Check a column of the type's own Arrow type. None: it needs the value-by-value
/// path (types whose values need more than a check, or values it would change).
fn check_in_place(ty: &LogicalType, array: &ArrayRef) -> Result<Option<ArrayRef>, BadValue> {
    match ty {
        LogicalType::Identifier { .. }
        | LogicalType::ShortText { .. }
        | LogicalType::MediumText { .. }
        | LogicalType::LongText { .. } => {
            for (row, value) in array.as_string::<i32>().iter().enumerate() {
                let Some(text) = value else { continue };
                check_text_limits(ty, text).map_err(|m| BadValue::at(row, m, describe_value(&serde_json::json!(text))))?;
            }
            Ok(Some(array.clone()))
        }
        // Canonical UUIDs stay as they are; a column with any other form is
        // rewritten value by value (or refused there).
        LogicalType::Uuid => {
            let canonical = array.as_string::<i32>().iter().all(|v| v.is_none_or(is_canonical_uuid));
            Ok(canonical.then(|| array.clone()))
        }
        LogicalType::Integer | LogicalType::Boolean | LogicalType::Date | LogicalType::Timestamp | LogicalType::Artifact => {
            Ok(Some(array.clone()))
        }
        LogicalType::Duration => {
            let values = array.as_primitive::<Int64Type>();
            match values.iter().enumerate().find(|(_, v)| v.is_some_and(|n| n < 0)) {
                Some((row, Some(n))) => Err(BadValue::at(row, format!("Duration cannot be negative, got {n}"), n.to_string())),
                _ => Ok(Some(array.clone())),
            }
        }
        // NaN and infinities read back as NULL (JSON has no spelling for them):
        // such a column takes the value-by-value path, which stores them so.
        LogicalType::Float => {
            let finite = array.as_primitive::<Float64Type>().iter().all(|v| v.is_none_or(f64::is_finite));
            Ok(finite.then(|| array.clone()))
        }
        LogicalType::Vector { .. } => {
            let items = array.as_fixed_size_list().values();
            let finite = items.null_count() == 0 && items.as_primitive::<Float32Type>().values().iter().all(|f| f.is_finite());
            Ok(finite.then(|| array.clone()))
        }
        LogicalType::Json | LogicalType::Categorical { .. } | LogicalType::Array { .. } => Ok(None),
    }
}

/// Every value through [`ColumnBuilder::push`], as a JSON row would go.
fn by_value(ty: &LogicalType, array: &ArrayRef) -> Result<ArrayRef, BadValue> {
    let array = readable(ty, array)?;
    let mut builder = ColumnBuilder::new(ty, array.len());
    for row in 0..array.len() {
        let value = array_value(array.as_ref(), row, ty);
        builder.push(&value).map_err(|m| BadValue::at(row, m, describe_value(&value)))?;
    }
    Ok(builder.finish())
}

/// The column in an Arrow type that [`array_value`] reads (it knows the types
/// the workspace stores); other types are cast to their nearest such type
/// rather than read as NULL, list items too (a driver's `int2[]` parameter
/// written to a vector or an integer array).
fn readable(ty: &LogicalType, array: &ArrayRef) -> Result<ArrayRef, BadValue> {
    let to = readable_type(array.data_type());
    if &to == array.data_type() {
        return Ok(array.clone());
    }
    cast_with_options(array, &to, &CastOptions { safe: false, ..Default::default() }).map_err(|e| BadValue {
        row: None,
        message: format!("cannot store {} as {}: {e}", array.data_type(), ty.class_name()),
        value: None,
    })
}

/// The type [`readable`] casts a column of type `t` to.
fn readable_type(t: &DataType) -> DataType {
    let item = |f: &arrow::datatypes::FieldRef| Arc::new(f.as_ref().clone().with_data_type(readable_type(f.data_type())));
    match t {
        DataType::Utf8
        | DataType::Utf8View
        | DataType::Int64
        | DataType::Float64
        | DataType::Float32
        | DataType::Boolean
        | DataType::Date32
        | DataType::Binary
        | DataType::Null
        | DataType::Timestamp(TimeUnit::Millisecond, _) => t.clone(),
        DataType::List(f) => DataType::List(item(f)),
        DataType::LargeList(f) => DataType::List(item(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(item(f), *n),
        DataType::LargeUtf8 => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => DataType::Binary,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        DataType::Date64 => DataType::Date32,
        t if t.is_integer() => DataType::Int64,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => DataType::Float64,
        // Structs, maps, dictionaries …: their text form, which a Json or text field can hold.
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date64Array, Float64Array, Int32Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn lists_of_narrow_numbers_fill_vectors_and_integer_arrays() {
        // What a driver's int2[] parameter becomes.
        let values = arrow::array::Int16Array::from(vec![1, 2, 3]);
        let field = Arc::new(arrow::datatypes::Field::new("item", DataType::Int16, true));
        let list: ArrayRef =
            Arc::new(arrow::array::ListArray::new(field, arrow::buffer::OffsetBuffer::from_lengths([3]), Arc::new(values), None));
        let vector = coerce_column(&LogicalType::vector(3), &list).unwrap();
        assert_eq!(array_value(vector.as_ref(), 0, &LogicalType::vector(3)), serde_json::json!([1.0, 2.0, 3.0]));
        let ints = LogicalType::array_of(LogicalType::Integer);
        let array = coerce_column(&ints, &list).unwrap();
        assert_eq!(array_value(array.as_ref(), 0, &ints), serde_json::json!([1, 2, 3]));
    }

    #[test]
    fn vectors_are_read_from_their_text_forms() {
        let v = LogicalType::vector(3);
        assert_eq!(v.coerce(&serde_json::json!("[1, 2.5, -3]")).unwrap(), serde_json::json!([1.0, 2.5, -3.0]));
        assert_eq!(v.coerce(&serde_json::json!("{1,2,3}")).unwrap(), serde_json::json!([1.0, 2.0, 3.0]));
        assert_eq!(v.coerce(&serde_json::json!("[1,2]")).unwrap_err(), "Vector[3] received dimension 2");
        assert!(v.coerce(&serde_json::json!("[1,x,3]")).unwrap_err().contains("expects a list of numbers, got '[1,x,3]'"));
        assert!(v.coerce(&serde_json::json!("1,2,3")).is_err());
    }

    fn ints(a: &ArrayRef) -> Vec<Option<i64>> {
        a.as_primitive::<Int64Type>().iter().collect()
    }

    #[test]
    fn a_column_of_the_right_type_is_kept_without_a_copy() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let out = coerce_column(&LogicalType::Integer, &a).unwrap();
        assert!(Arc::ptr_eq(&a, &out));
    }

    #[test]
    fn numbers_of_other_widths_are_cast_not_lost() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None, Some(-2)]));
        assert_eq!(ints(&coerce_column(&LogicalType::Integer, &a).unwrap()), vec![Some(7), None, Some(-2)]);
        let f = coerce_column(&LogicalType::Float, &a).unwrap();
        assert_eq!(f.as_primitive::<Float64Type>().iter().collect::<Vec<_>>(), vec![Some(7.0), None, Some(-2.0)]);
        let d: ArrayRef = Arc::new(Date64Array::from(vec![86_400_000 * 3]));
        let out = coerce_column(&LogicalType::Date, &d).unwrap();
        assert_eq!(array_value(out.as_ref(), 0, &LogicalType::Date), serde_json::json!("1970-01-04"));
    }

    #[test]
    fn text_follows_the_json_rules() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some(" 42 "), None]));
        assert_eq!(ints(&coerce_column(&LogicalType::Integer, &a).unwrap()), vec![Some(42), None]);
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["1", "many"]));
        let e = coerce_column(&LogicalType::Integer, &bad).unwrap_err();
        assert_eq!((e.row, e.value.as_deref()), (Some(1), Some("'many'")));
        let doc: ArrayRef = Arc::new(StringArray::from(vec![r#"{"a": 1}"#, "plain"]));
        let out = coerce_column(&LogicalType::Json, &doc).unwrap();
        assert_eq!(out.as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some(r#"{"a":1}"#), Some(r#""plain""#)]);
    }

    #[test]
    fn limits_and_ranges_are_checked_in_place() {
        let long: ArrayRef = Arc::new(StringArray::from(vec!["ok", "toolong"]));
        let e = coerce_column(&LogicalType::ShortText { max_chars: 3 }, &long).unwrap_err();
        assert_eq!(e.row, Some(1));
        assert!(e.message.contains("exceeds 3 characters"), "{}", e.message);
        let negative: ArrayRef = Arc::new(Int64Array::from(vec![5, -1]));
        assert_eq!(coerce_column(&LogicalType::Duration, &negative).unwrap_err().row, Some(1));
        let empty: ArrayRef = Arc::new(StringArray::from(vec![""]));
        assert!(coerce_column(&LogicalType::identifier(), &empty).is_err());
        let overflow: ArrayRef = Arc::new(Float64Array::from(vec![1e300]));
        assert!(coerce_column(&LogicalType::Integer, &overflow).is_err());
    }

    #[test]
    fn non_finite_floats_store_as_null_as_json_rows_do() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::NAN]));
        let out = coerce_column(&LogicalType::Float, &a).unwrap();
        assert_eq!(out.as_primitive::<Float64Type>().iter().collect::<Vec<_>>(), vec![Some(1.5), None]);
    }
}
