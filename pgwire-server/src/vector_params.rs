//! Vectors bound as parameters in pgvector's forms: its text, `'[1,2,3]'`,
//! what pgvector's SQLAlchemy type (LangChain, LlamaIndex) and a plain
//! psycopg `str` send for `INSERT … VALUES ($1)` into a vector column, typed
//! unknown; and its binary form, what psycopg sends for a numpy array once
//! pgvector-python's `register_vector` has found the `vector` type
//! (vector_type.rs). The parameter decoder reads a vector column's parameter
//! as a float array, whose text form is Postgres' `{1,2,3}`; either form is
//! given to it as that text. Dimensions and numbers are then checked by the write path as for any
//! vector ("doc.emb: Vector[3] received dimension 2").

use bytes::Bytes;
use datafusion::arrow::datatypes::DataType;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::error::PgWireResult;

use crate::router::DfStatement;

/// `portal` with each vector (or float list) parameter pgvector's way given
/// in the parameter decoder's form, Postgres' float array text `{…}`: text
/// `[…]` untyped, and pgvector's binary form (what a psycopg connection with
/// pgvector-python's `register_vector` sends for a numpy array or `Vector`).
/// None when there is none (the common case).
pub(crate) fn pgvector_parameters(portal: &Portal<DfStatement>) -> PgWireResult<Option<Portal<DfStatement>>> {
    let (_, Some((_, plan))) = &portal.statement.statement else { return Ok(None) };
    // Binary parameters of a type the wire library does not know, or text with a '['.
    let declared = &portal.statement.parameter_types;
    let unknown_binary =
        (0..portal.parameters.len()).any(|i| portal.parameter_format.is_binary(i) && matches!(declared.get(i), Some(None)));
    if !unknown_binary && !portal.parameters.iter().flatten().any(|p| p.contains(&b'[')) {
        return Ok(None);
    }
    let Ok(types) = plan.get_parameter_types() else { return Ok(None) };
    let mut parameters: Option<Vec<_>> = None;
    let mut formats: Vec<i16> = (0..portal.parameters.len()).map(|i| portal.parameter_format.is_binary(i) as i16).collect();
    for (index, value) in portal.parameters.iter().enumerate() {
        let Some(bytes) = value else { continue };
        let inferred = types.get(&format!("${}", index + 1)).cloned().flatten();
        let float_list = inferred.as_ref().is_some_and(is_float_list);
        // A type the client declared decides how it is read. None is a type
        // the wire library does not know: pgvector's `vector` is the one
        // such type the catalog lists (vector_type.rs).
        let declared = portal.statement.parameter_types.get(index).cloned();
        let rewritten = match (portal.parameter_format.is_binary(index), declared) {
            // Into a vector column, or where the statement takes text (an
            // UPDATE's SET reads a vector given as text).
            (true, Some(None)) if float_list || inferred.as_ref().is_none_or(is_text) => {
                // Postgres' array text for a float array, pgvector's text where text is read.
                let numbers = pgvector_binary(bytes)?;
                if float_list { format!("{{{numbers}}}") } else { format!("[{numbers}]") }
            }
            (false, Some(None) | Some(Some(Type::UNKNOWN)) | None) if float_list => match pgvector_text(bytes) {
                Some(text) => text,
                None => continue,
            },
            _ => continue,
        };
        parameters.get_or_insert_with(|| portal.parameters.clone())[index] = Some(rewritten.into_bytes().into());
        formats[index] = 0;
    }
    Ok(parameters.map(|parameters| with_parameters(portal, parameters, Format::Individual(formats))))
}

/// pgvector's text `[1, 2, 3]` as `{1,2,3}` (Postgres' array text takes no
/// blanks around the numbers); None for any other text.
fn pgvector_text(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(format!("{{{}}}", inner.split(',').map(str::trim).collect::<Vec<_>>().join(",")))
}

/// The numbers of pgvector's binary form (`vector_send`: the dimensions as a
/// big-endian u16, an unused u16 (0), then each element as a big-endian
/// float4), comma-separated. Read as pgvector's `vector_recv` reads it, with
/// its checks.
fn pgvector_binary(bytes: &[u8]) -> PgWireResult<String> {
    let invalid = |why: String| crate::user_error("22P02", format!("invalid binary vector: {why}"));
    if bytes.len() < 4 {
        return Err(invalid(format!("{} bytes, fewer than its 4-byte header", bytes.len())));
    }
    let dim = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    let unused = u16::from_be_bytes([bytes[2], bytes[3]]);
    if unused != 0 {
        return Err(invalid("expected unused to be 0".into()));
    }
    if dim == 0 {
        return Err(crate::user_error("22023", "vector must have at least 1 dimension".into()));
    }
    if bytes.len() != 4 + 4 * dim {
        return Err(invalid(format!("{} dimensions in {} bytes (expected {})", dim, bytes.len(), 4 + 4 * dim)));
    }
    let mut text = String::with_capacity(dim * 12);
    for (k, item) in bytes[4..].chunks_exact(4).enumerate() {
        let value = f32::from_be_bytes(item.try_into().expect("four bytes"));
        if value.is_nan() {
            return Err(crate::user_error("22000", "NaN not allowed in vector".into()));
        }
        if value.is_infinite() {
            return Err(crate::user_error("22000", "infinite value not allowed in vector".into()));
        }
        if k > 0 {
            text.push(',');
        }
        // Display gives the shortest text that reads back as the same f32.
        text.push_str(&value.to_string());
    }
    Ok(text)
}

/// `portal` with other parameter values (and formats).
pub(crate) fn with_parameters(
    portal: &Portal<DfStatement>,
    parameters: Vec<Option<Bytes>>,
    parameter_format: Format,
) -> Portal<DfStatement> {
    let mut out = Portal::default();
    out.name = portal.name.clone();
    out.statement = portal.statement.clone();
    out.parameter_format = parameter_format;
    out.parameters = parameters;
    out.result_column_format = portal.result_column_format.clone();
    out.state = portal.state.clone();
    out
}

fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn is_float_list(ty: &DataType) -> bool {
    match ty {
        DataType::FixedSizeList(item, _) | DataType::List(item) => item.data_type().is_floating(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(values: &[f32]) -> Vec<u8> {
        let mut out = (values.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&[0, 0]);
        values.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes()));
        out
    }

    #[test]
    fn pgvector_forms_become_float_array_text() {
        assert_eq!(pgvector_text(b"[1, 0.5 ,-2]").as_deref(), Some("{1,0.5,-2}"));
        assert_eq!(pgvector_text(b"{1,2}"), None);
        assert_eq!(pgvector_binary(&binary(&[1.0, 0.1, -2.5])).unwrap(), "1,0.1,-2.5");
        assert_eq!(pgvector_binary(&binary(&[3.4028235e38])).unwrap().parse::<f32>().unwrap(), f32::MAX);
        assert!(pgvector_binary(&binary(&[1.0])[..6]).is_err(), "truncated");
        assert!(pgvector_binary(&[0, 1]).is_err(), "no header");
        assert!(pgvector_binary(&binary(&[])).is_err(), "no dimensions");
        assert!(pgvector_binary(&binary(&[f32::NAN])).is_err());
        assert!(pgvector_binary(&binary(&[f32::INFINITY])).is_err());
        let mut unused = binary(&[1.0]);
        unused[3] = 1;
        assert!(pgvector_binary(&unused).is_err());
    }
}
