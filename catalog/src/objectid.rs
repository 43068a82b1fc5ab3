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

/// The object_id of a row of an entity with a declared primary key: derived
/// as from a name, from the key's text. A one-field key's text is its value
/// (an integer in decimal, a text as it is), so a table keyed by a text
/// column gets the ids its rows would get with that text as their name; a key
/// of several fields is the compact JSON array of their values (`[7,"x"]`).
/// The same key always gives the same id, in every process and after a
/// reimport. `None` for a NULL part or a value that is not an integer or text.
pub fn derive_key_object_id(entity_id: &str, key: &[serde_json::Value]) -> Option<String> {
    use serde_json::Value as Json;
    if key.iter().any(|v| !matches!(v, Json::String(_)) && !matches!(v, Json::Number(n) if n.is_i64())) {
        return None;
    }
    let text = match key {
        [Json::String(s)] => return Some(derive_object_id(entity_id, s)),
        [one] => one.to_string(),
        several => serde_json::to_string(several).expect("key values serialise"),
    };
    Some(derive_object_id(entity_id, &text))
}

/// A new object_id for a row that gives neither an id nor a name (entities
/// whose [`crate::IdSource`] generates ids): 128 bits, the Unix time in
/// milliseconds in the top 48 and random bits below (as UUIDv7 lays them out),
/// in the derived ids' 42-digit decimal form. Ids from one process strictly
/// increase (a clash within a millisecond takes the previous id plus one), so
/// their text order is their creation order; ids from different processes
/// differ in their 80 random bits.
pub fn generate_object_id() -> String {
    use std::hash::BuildHasher;
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    // RandomState is seeded from the OS once per thread and stepped per instance.
    let random = std::collections::hash_map::RandomState::new();
    let noise = (u128::from(random.hash_one(ms)) << 16 | u128::from(random.hash_one(!ms) as u16)) & ((1u128 << 80) - 1);
    let candidate = ((ms & ((1u128 << 48) - 1)) << 80) | noise;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let id = if candidate > *last { candidate } else { *last + 1 };
    *last = id;
    format!("{id:0>width$}", width = HASH_LENGTH)
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
