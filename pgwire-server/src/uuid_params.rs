//! Parameters the client declares `uuid` (OID 2950): what psycopg sends for a
//! `uuid.UUID`, pgjdbc for `setObject(i, UUID)` (in binary, 16 bytes) and
//! SQLAlchemy for a `Uuid` column. The parameter decoder reads a uuid as a
//! string and only in text format; Uuid fields keep their canonical text
//! (catalog `LogicalType::Uuid`). So each such parameter is given to it as
//! that text: 16 binary bytes as their hyphenated hex, text in any form
//! Postgres reads as its canonical form (an upper-case UUID finds the row
//! stored lower-case, as in Postgres), anything else refused with 22P02.

use bytes::Bytes;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use heavenbase::catalog::types::{canonical_uuid, is_canonical_uuid, uuid_from_bytes};

use crate::router::DfStatement;
use crate::vector_params::with_parameters;

/// `portal` with every uuid-typed parameter as canonical text, declared
/// text; None when it has no such parameter.
pub(crate) fn uuid_parameters(portal: &Portal<DfStatement>) -> PgWireResult<Option<Portal<DfStatement>>> {
    let declared = &portal.statement.parameter_types;
    if !declared.iter().any(|t| *t == Some(Type::UUID)) {
        return Ok(None);
    }
    let count = portal.parameters.len();
    let mut parameters: Option<Vec<Option<Bytes>>> = None;
    let mut formats: Vec<i16> = (0..count).map(|i| portal.parameter_format.is_binary(i) as i16).collect();
    for (index, value) in portal.parameters.iter().enumerate() {
        let (Some(Some(Type::UUID)), Some(bytes)) = (declared.get(index), value) else { continue };
        let text = match canonical_text(bytes, portal.parameter_format.is_binary(index)) {
            Some(text) => text,
            None => return Err(invalid_uuid(bytes, portal.parameter_format.is_binary(index))),
        };
        parameters.get_or_insert_with(|| portal.parameters.clone())[index] = Some(Bytes::from(text));
        formats[index] = 0;
    }
    let Some(parameters) = parameters else { return Ok(None) };
    // The decoder reads a parameter declared uuid as a string only if it is
    // declared text (a String does not accept uuid); it is canonical text now.
    let types =
        portal.statement.parameter_types.iter().map(|t| if *t == Some(Type::UUID) { Some(Type::TEXT) } else { t.clone() });
    let statement = StoredStatement::new(portal.statement.id.clone(), portal.statement.statement.clone(), types.collect());
    let mut rewritten = with_parameters(portal, parameters, Format::Individual(formats));
    rewritten.statement = std::sync::Arc::new(statement);
    Ok(Some(rewritten))
}

/// The canonical text of a uuid parameter's bytes (here and on the
/// key-lookup path).
pub(crate) fn canonical_text(bytes: &[u8], binary: bool) -> Option<String> {
    if binary {
        return Some(uuid_from_bytes(bytes.try_into().ok()?));
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if is_canonical_uuid(text) { Some(text.to_string()) } else { canonical_uuid(text) }
}

fn invalid_uuid(bytes: &[u8], binary: bool) -> PgWireError {
    let message = if binary {
        format!("invalid length for type uuid: {} bytes (a uuid's binary form is 16)", bytes.len())
    } else {
        format!("invalid input syntax for type uuid: \"{}\"", String::from_utf8_lossy(bytes))
    };
    crate::user_error("22P02", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_parameters_become_canonical_text() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let bytes = [0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11];
        assert_eq!(canonical_text(&bytes, true).as_deref(), Some(canonical));
        assert_eq!(canonical_text(&bytes[..15], true), None);
        assert_eq!(canonical_text(canonical.as_bytes(), false).as_deref(), Some(canonical));
        assert_eq!(canonical_text(b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", false).as_deref(), Some(canonical));
        assert_eq!(canonical_text(b"{a0eebc999c0b4ef8bb6d6bb9bd380a11}", false).as_deref(), Some(canonical));
        assert_eq!(canonical_text(b"a0eebc99", false), None);
        assert_eq!(canonical_text(canonical.as_bytes(), true), None, "36 bytes are no binary uuid");
    }
}
