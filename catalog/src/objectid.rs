//! object_id derivation, byte-identical to the reference (docs/reference.md §2): MD5 of the
//! tagged JSON text `{"__obj_data__": [<entity_id>, <name>], "__obj_type__": "tuple"}`
//! (Python `json.dumps` spacing, non-ASCII kept as UTF-8), read as an unsigned
//! 128-bit integer, written in decimal and left-padded with zeros to 42 digits.

use md5::{Digest, Md5};

/// Digits of a derived id (`heavenbase.entity.id.hash_length`).
pub const HASH_LENGTH: usize = 42;

/// The tagged JSON text the reference hashes for the tuple `(parts...)`.
pub fn tagged_tuple_json(parts: &[&str]) -> String {
    // serde_json escapes exactly what Python's json.dumps(ensure_ascii=False) escapes:
    // '"', '\\', and control characters (\b \f \n \r \t, others as lower-case \u00xx).
    let items: Vec<String> = parts.iter().map(|p| serde_json::to_string(p).expect("string serialises")).collect();
    format!("{{\"__obj_data__\": [{}], \"__obj_type__\": \"tuple\"}}", items.join(", "))
}

/// `hash_id(parts...)`: decimal MD5, zero-padded to 42 digits.
pub fn hash_id(parts: &[&str]) -> String {
    let digest = Md5::digest(tagged_tuple_json(parts).as_bytes());
    let n = u128::from_be_bytes(digest.into());
    format!("{n:0>width$}", width = HASH_LENGTH)
}

/// The object_id an entity row with display name `name` gets.
pub fn derive_object_id(entity_id: &str, name: &str) -> String {
    hash_id(&[entity_id, name])
}

/// The Catalog row id of an entity row: `catalog:<entity_id>:<object_id>` when it
/// fits in 63 characters, else `catalog:` + a hash that includes the workspace.
pub fn catalog_row_id(ws_id: &str, entity_id: &str, object_id: &str) -> String {
    let plain = format!("catalog:{entity_id}:{object_id}");
    if plain.chars().count() <= crate::types::IDENTIFIER_MAX {
        return plain;
    }
    let hashed = format!("catalog:{}", hash_id(&["catalog", ws_id, entity_id, object_id]));
    if hashed.len() <= crate::types::IDENTIFIER_MAX { hashed } else { hash_id(&["catalog", ws_id, entity_id, object_id]) }
}

/// A MetaSchema row id: `<kind>:<row_id>` when it fits, else `<kind>:` + hash.
pub fn system_row_id(kind: &str, row_id: &str) -> String {
    let plain = format!("{kind}:{row_id}");
    if plain.chars().count() <= crate::types::IDENTIFIER_MAX { plain } else { format!("{kind}:{}", hash_id(&[kind, row_id])) }
}
