//! Reading stored Arrow values back as JSON, the form `get` returns and `set`
//! merges. Every value read here coerces back to the same stored value.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
    ListArray, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use serde_json::{Value as Json, json};

use crate::Row;
use crate::types::LogicalType;

/// The rows of a batch as JSON objects, column `c` read as `types[c]` (the
/// entity's field types for an entity's rows; `LogicalType::from_arrow` for
/// any SQL result).
pub fn batch_rows(batch: &RecordBatch, types: &[LogicalType]) -> Vec<Row> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            schema
                .fields()
                .iter()
                .zip(types)
                .enumerate()
                .map(|(c, (f, ty))| (f.name().clone(), array_value(batch.column(c).as_ref(), row, ty)))
                .collect()
        })
        .collect()
}

/// The JSON form of `array[row]` for a column of logical type `ty`.
/// Timestamps read as RFC 3339 text in UTC with milliseconds, dates as
/// `YYYY-MM-DD`, Json columns as the parsed document, artifacts as `{"base64"}`.
pub fn array_value(array: &dyn Array, row: usize, ty: &LogicalType) -> Json {
    if array.is_null(row) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(row);
            if matches!(ty, LogicalType::Json) {
                serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_string()))
            } else {
                Json::String(text.to_string())
            }
        }
        DataType::Utf8View => Json::String(array.as_string_view().value(row).to_string()),
        DataType::Int64 => json!(array.as_any().downcast_ref::<Int64Array>().map(|a| a.value(row))),
        DataType::Float64 => float_json(array.as_any().downcast_ref::<Float64Array>().map(|a| a.value(row))),
        DataType::Float32 => float_json(array.as_any().downcast_ref::<Float32Array>().map(|a| a.value(row) as f64)),
        DataType::Boolean => json!(array.as_any().downcast_ref::<BooleanArray>().map(|a| a.value(row))),
        DataType::Timestamp(..) => match array.as_any().downcast_ref::<TimestampMillisecondArray>() {
            Some(a) => format_timestamp(a.value(row)),
            None => Json::Null,
        },
        DataType::Date32 => match array.as_any().downcast_ref::<Date32Array>() {
            Some(a) => format_date(a.value(row)),
            None => Json::Null,
        },
        DataType::Binary => match array.as_any().downcast_ref::<BinaryArray>() {
            Some(a) => json!({"base64": base64_encode(a.value(row))}),
            None => Json::Null,
        },
        DataType::FixedSizeList(..) => {
            let list = array.as_any().downcast_ref::<FixedSizeListArray>().expect("fixed size list");
            list_json(&list.value(row), ty)
        }
        DataType::List(..) => {
            let list = array.as_any().downcast_ref::<ListArray>().expect("list");
            list_json(&list.value(row), ty)
        }
        _ => Json::Null,
    }
}

fn list_json(values: &ArrayRef, ty: &LogicalType) -> Json {
    let item_ty = match ty {
        LogicalType::Array { item: Some(item) } => (**item).clone(),
        LogicalType::Vector { .. } => LogicalType::Float,
        _ => LogicalType::Json,
    };
    Json::Array((0..values.len()).map(|i| array_value(values.as_ref(), i, &item_ty)).collect())
}

fn float_json(v: Option<f64>) -> Json {
    match v {
        Some(f) if f.is_finite() => serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null),
        _ => Json::Null,
    }
}

pub fn format_timestamp(ms: i64) -> Json {
    match DateTime::from_timestamp_millis(ms) {
        Some(dt) => Json::String(dt.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => json!(ms),
    }
}

pub fn format_date(days: i32) -> Json {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    match epoch.checked_add_signed(chrono::Duration::days(days as i64)) {
        Some(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        None => Json::Null,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if clean.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in chunk {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            n = n << 6 | v as u32;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Plain-text form of a cell for messages and tables (strings unquoted).
pub fn display_value(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    match array.data_type() {
        DataType::Utf8 => array.as_any().downcast_ref::<StringArray>().map(|a| a.value(row).to_string()).unwrap_or_default(),
        _ => arrow::util::display::array_value_to_string(array, row).unwrap_or_default(),
    }
}
