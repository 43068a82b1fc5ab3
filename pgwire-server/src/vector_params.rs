//! Vectors bound as parameters in pgvector's text form, `'[1,2,3]'`: what
//! pgvector's SQLAlchemy type (LangChain, LlamaIndex) and a plain psycopg
//! `str` send for `INSERT … VALUES ($1)` into a vector column, typed unknown.
//! The parameter decoder reads a vector column's parameter as a float array,
//! whose text form is Postgres' `{1,2,3}`; a `[…]` text is given to it in that
//! form. Dimensions and numbers are then checked by the write path as for any
//! vector ("doc.emb: Vector[3] received dimension 2").

use datafusion::arrow::datatypes::DataType;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::portal::Portal;

use crate::router::DfStatement;

/// `portal` with each text-format `[…]` parameter of a vector (or float
/// list) type written `{…}`; None when there is none (the common case).
pub(crate) fn pgvector_text_parameters(portal: &Portal<DfStatement>) -> Option<Portal<DfStatement>> {
    let (_, Some((_, plan))) = &portal.statement.statement else { return None };
    if !portal.parameters.iter().flatten().any(|p| p.contains(&b'[')) {
        return None;
    }
    let types = plan.get_parameter_types().ok()?;
    let mut parameters: Option<Vec<_>> = None;
    for (name, ty) in &types {
        let Some(ty) = ty else { continue };
        if !is_float_list(ty) {
            continue;
        }
        let Some(index) = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).and_then(|n| n.checked_sub(1)) else {
            continue;
        };
        // A type the client declared decides how it is read; unknown (0) leaves it to us.
        let declared = portal.statement.parameter_types.get(index).cloned().flatten();
        if portal.parameter_format.is_binary(index) || declared.is_some_and(|t| t != Type::UNKNOWN) {
            continue;
        }
        let Some(Some(bytes)) = portal.parameters.get(index) else { continue };
        let Ok(text) = std::str::from_utf8(bytes) else { continue };
        let Some(inner) = text.trim().strip_prefix('[').and_then(|t| t.strip_suffix(']')) else { continue };
        // Postgres' array text takes no blanks around the numbers here.
        let rewritten = format!("{{{}}}", inner.split(',').map(str::trim).collect::<Vec<_>>().join(","));
        parameters.get_or_insert_with(|| portal.parameters.clone())[index] = Some(rewritten.into_bytes().into());
    }
    let parameters = parameters?;
    let mut out = Portal::default();
    out.name = portal.name.clone();
    out.statement = portal.statement.clone();
    out.parameter_format = portal.parameter_format.clone();
    out.parameters = parameters;
    out.result_column_format = portal.result_column_format.clone();
    out.state = portal.state.clone();
    Some(out)
}

fn is_float_list(ty: &DataType) -> bool {
    match ty {
        DataType::FixedSizeList(item, _) | DataType::List(item) => item.data_type().is_floating(),
        _ => false,
    }
}
