//! A runner for SQLite's sqllogictest corpus over the Postgres wire protocol.
//!
//! The corpus (tests/sqllogictest/select1–5.test, public domain, from
//! sqlite.org/sqllogictest) is a list of records: `statement ok|error` and
//! `query <types> <sort> [label]` with their expected results, optionally
//! preceded by `skipif <engine>` / `onlyif <engine>`. The rules below are the
//! reference harness' (src/sqllogictest.c with its ODBC engine, which is how it
//! drives Postgres): each value is formatted by its column's type letter
//! (`I` an integer, truncated as ODBC's SQL_C_SLONG does; `R` `%.3f`; `T` text
//! with `(empty)` for '' and `@` for unprintable characters; `NULL`), rows are
//! sorted as strings for `rowsort`, every value for `valuesort`, and results of
//! more than `hash-threshold` values (8 by default) compare as the MD5 of the
//! values each followed by a newline.
//!
//! The same runner drives `hb serve` and a real Postgres, so the two pass rates
//! are measured the same way (the `logictest` benchmark and the e2e test).

use md5::{Digest, Md5};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The engine name records are matched against by `skipif` / `onlyif`: the
/// server presents itself as Postgres, and is judged as Postgres is.
pub const ENGINE: &str = "postgresql";

/// One record of a test file, its skip conditions already applied.
#[derive(Debug, Clone)]
pub enum Record {
    Statement { line: usize, sql: String, expect_ok: bool },
    Query { line: usize, sql: String, types: String, sort: Sort, expected: Expected },
    HashThreshold(usize),
    Halt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    None,
    Rows,
    Values,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Values(Vec<String>),
    Hash { count: usize, md5: String },
}

/// Parse a test file into the records that apply to [`ENGINE`].
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        // A record is a run of non-blank lines; comments are skipped.
        if lines[i].trim().is_empty() || lines[i].starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let block: Vec<&str> = lines[start..i].iter().copied().filter(|l| !l.starts_with('#')).collect();
        if let Some(record) = parse_record(&block, start + 1)? {
            records.push(record);
        }
    }
    Ok(records)
}

fn parse_record(block: &[&str], line: usize) -> Result<Option<Record>, String> {
    let mut skip = false;
    let mut at = 0;
    while let Some(words) = block.get(at).map(|l| l.split_whitespace().collect::<Vec<_>>()) {
        match words.as_slice() {
            ["skipif", engine, ..] => skip |= *engine == ENGINE,
            ["onlyif", engine, ..] => skip |= *engine != ENGINE,
            _ => break,
        }
        at += 1;
    }
    let Some(head) = block.get(at) else { return Ok(None) };
    let words: Vec<&str> = head.split_whitespace().collect();
    let body = &block[at + 1..];
    let record = match words.as_slice() {
        ["statement", outcome, ..] => Record::Statement { line, sql: body.join("\n"), expect_ok: *outcome == "ok" },
        ["query", types, rest @ ..] => {
            let sort = match rest.first().copied().unwrap_or("nosort") {
                "nosort" => Sort::None,
                "rowsort" => Sort::Rows,
                "valuesort" => Sort::Values,
                other => return Err(format!("line {line}: unknown sort mode {other}")),
            };
            let split = body.iter().position(|l| *l == "----").unwrap_or(body.len());
            let results = body.get(split + 1..).unwrap_or(&[]);
            let expected = match results {
                [one] if one.contains(" values hashing to ") => {
                    let (count, md5) = one.split_once(" values hashing to ").unwrap_or_default();
                    Expected::Hash {
                        count: count.trim().parse().map_err(|_| format!("line {line}: bad hash line {one}"))?,
                        md5: md5.trim().to_string(),
                    }
                }
                values => Expected::Values(values.iter().map(|v| v.to_string()).collect()),
            };
            Record::Query { line, sql: body[..split].join("\n"), types: types.to_string(), sort, expected }
        }
        ["hash-threshold", n] => Record::HashThreshold(n.parse().map_err(|_| format!("line {line}: bad threshold"))?),
        ["halt"] => Record::Halt,
        _ => return Err(format!("line {line}: unknown record {head}")),
    };
    Ok(if skip { None } else { Some(record) })
}

/// Format one value the way the reference harness does for its column type.
pub fn format_value(value: Option<&str>, kind: char) -> String {
    let Some(v) = value else { return "NULL".into() };
    match kind {
        'I' => {
            let v = v.trim();
            match v.parse::<i64>() {
                Ok(n) => n.to_string(),
                // Postgres' numeric and float text: ODBC truncates toward zero.
                Err(_) => v.parse::<f64>().map(|f| (f.trunc() as i64).to_string()).unwrap_or_else(|_| leading_integer(v)),
            }
        }
        'R' => v.trim().parse::<f64>().map(|f| format!("{f:.3}")).unwrap_or_else(|_| "0.000".into()),
        _ if v.is_empty() => "(empty)".into(),
        _ => v.chars().map(|c| if (' '..='~').contains(&c) { c } else { '@' }).collect(),
    }
}

/// What a text value converts to as an integer: its leading digits, or 0.
fn leading_integer(v: &str) -> String {
    let end = v.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')))).map(|(i, _)| i);
    v[..end.unwrap_or(v.len())].parse::<i64>().unwrap_or(0).to_string()
}

/// Sort and compare a query's formatted values against what the file expects.
pub fn check(mut values: Vec<String>, columns: usize, sort: Sort, threshold: usize, expected: &Expected) -> Result<(), String> {
    match sort {
        Sort::None => {}
        Sort::Rows => {
            let mut rows: Vec<Vec<String>> = values.chunks(columns.max(1)).map(|r| r.to_vec()).collect();
            rows.sort();
            values = rows.concat();
        }
        Sort::Values => values.sort(),
    }
    let hashed = threshold > 0 && values.len() > threshold;
    match expected {
        Expected::Hash { count, md5 } => {
            let got = hash(&values);
            if values.len() == *count && got == *md5 {
                Ok(())
            } else {
                Err(format!("expected {count} values hashing to {md5}, got {} values hashing to {got}", values.len()))
            }
        }
        Expected::Values(want) if hashed => Err(format!("expected {} values, got {} (hashed)", want.len(), values.len())),
        Expected::Values(want) if *want == values => Ok(()),
        Expected::Values(want) => Err(format!("expected {}, got {}", preview(want), preview(&values))),
    }
}

fn hash(values: &[String]) -> String {
    let mut md5 = Md5::new();
    for v in values {
        md5.update(v.as_bytes());
        md5.update(b"\n");
    }
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn preview(values: &[String]) -> String {
    let shown: Vec<&str> = values.iter().take(12).map(String::as_str).collect();
    let more = if values.len() > shown.len() { format!(" … ({} values)", values.len()) } else { String::new() };
    format!("[{}]{more}", shown.join(", "))
}

/// One record that did not pass.
#[derive(Debug, Clone)]
pub struct Failure {
    pub line: usize,
    pub sql: String,
    pub reason: String,
}

/// What a file's run found.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Records run (statements and queries).
    pub total: usize,
    pub passed: usize,
    pub failures: Vec<Failure>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        if self.total == 0 { 1.0 } else { self.passed as f64 / self.total as f64 }
    }
}

/// Run `records` in order on one connection. A statement or query that does
/// not answer within `timeout` counts as failed and the run goes on.
pub async fn run(client: &Client, records: &[Record], timeout: std::time::Duration) -> Outcome {
    let mut out = Outcome::default();
    let mut threshold = 8;
    for record in records {
        let (line, sql, verdict) = match record {
            Record::HashThreshold(n) => {
                threshold = *n;
                continue;
            }
            Record::Halt => break,
            Record::Statement { line, sql, expect_ok } => {
                let verdict = match tokio::time::timeout(timeout, client.simple_query(sql)).await {
                    Err(_) => Err("timed out".to_string()),
                    Ok(Ok(_)) if *expect_ok => Ok(()),
                    Ok(Ok(_)) => Err("succeeded, expected an error".to_string()),
                    Ok(Err(_)) if !*expect_ok => Ok(()),
                    Ok(Err(e)) => Err(error_text(&e)),
                };
                (*line, sql, verdict)
            }
            Record::Query { line, sql, types, sort, expected } => {
                let kinds: Vec<char> = types.chars().collect();
                let verdict = match tokio::time::timeout(timeout, client.simple_query(sql)).await {
                    Err(_) => Err("timed out".to_string()),
                    Ok(Err(e)) => Err(error_text(&e)),
                    Ok(Ok(messages)) => {
                        let mut values = Vec::new();
                        let mut width = Ok(());
                        for m in &messages {
                            if let SimpleQueryMessage::Row(row) = m {
                                if row.len() != kinds.len() {
                                    width = Err(format!("{} columns, expected {}", row.len(), kinds.len()));
                                }
                                for (i, kind) in kinds.iter().enumerate().take(row.len()) {
                                    values.push(format_value(row.get(i), *kind));
                                }
                            }
                        }
                        width.and_then(|()| check(values, kinds.len(), *sort, threshold, expected))
                    }
                };
                (*line, sql, verdict)
            }
        };
        out.total += 1;
        match verdict {
            Ok(()) => out.passed += 1,
            Err(reason) => out.failures.push(Failure { line, sql: sql.clone(), reason }),
        }
    }
    out
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_formatted_as_the_reference_harness_does() {
        assert_eq!(format_value(None, 'I'), "NULL");
        assert_eq!(format_value(Some("-7"), 'I'), "-7");
        assert_eq!(format_value(Some("2.75"), 'I'), "2");
        assert_eq!(format_value(Some("-2.75"), 'I'), "-2");
        assert_eq!(format_value(Some("12abc"), 'I'), "12");
        assert_eq!(format_value(Some("2"), 'R'), "2.000");
        assert_eq!(format_value(Some("0.0005"), 'R'), "0.001");
        assert_eq!(format_value(Some(""), 'T'), "(empty)");
        assert_eq!(format_value(Some("a\tb"), 'T'), "a@b");
    }

    #[test]
    fn records_parse_with_skips_hashes_and_sorts() {
        let text = "statement ok\nCREATE TABLE t1(a INTEGER)\n\n# comment\nskipif postgresql\nquery I nosort\nSELECT 1\n----\n1\n\n\
                    onlyif postgresql\nquery II rowsort\nSELECT a, a\n  FROM t1\n----\n30 values hashing to abc\n\nhash-threshold 8\n\nhalt\n";
        let records = parse(text).unwrap();
        assert_eq!(records.len(), 4, "{records:?}");
        match &records[1] {
            Record::Query { sql, types, sort, expected, .. } => {
                assert_eq!(sql, "SELECT a, a\n  FROM t1");
                assert_eq!(types, "II");
                assert_eq!(*sort, Sort::Rows);
                assert_eq!(*expected, Expected::Hash { count: 30, md5: "abc".into() });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sorting_and_hashing_follow_the_harness() {
        let values = vec!["2".to_string(), "b".into(), "10".into(), "a".into()];
        // Rows compare as strings, column by column: "10" sorts before "2".
        assert!(
            check(values.clone(), 2, Sort::Rows, 8, &Expected::Values(vec!["10".into(), "a".into(), "2".into(), "b".into()]))
                .is_ok()
        );
        assert!(
            check(values.clone(), 2, Sort::None, 8, &Expected::Values(vec!["10".into(), "a".into(), "2".into(), "b".into()]))
                .is_err()
        );
        // The MD5 of "1\n2\n", as the harness hashes it.
        let md5 = hash(&["1".to_string(), "2".into()]);
        assert_eq!(md5, "6ddb4095eb719e2a9f0a3f95677d24e0");
        assert!(check(vec!["2".into(), "1".into()], 1, Sort::Values, 8, &Expected::Hash { count: 2, md5 }).is_ok());
    }
}
