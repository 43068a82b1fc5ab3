//! Postgres frontend messages as bytes, for clients that speak the protocol by
//! hand: the hostile-input tests (truncated and lying messages) and the
//! benchmarks' client that stops reading.

/// A StartupMessage for protocol 3.0 as `user` into `database`.
pub fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend(body);
    message
}

/// A typed frontend message with a declared length (not necessarily the true one).
pub fn message(tag: u8, declared_len: i32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&declared_len.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A simple-protocol Query message for `sql`, its length true.
pub fn query(sql: &str) -> Vec<u8> {
    let body = [sql.as_bytes(), &[0]].concat();
    message(b'Q', (body.len() + 4) as i32, &body)
}
