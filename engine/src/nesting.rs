//! How deeply a statement nests, checked on its tokens before any parser
//! sees it.
//!
//! Two limits, both answered with 54001 (`statement_too_complex`) naming the
//! depth found:
//! - Function calls, subqueries and `ARRAY[…]` nested more than [`MAX_CALL_DEPTH`] deep.
//!   sqlparser's PostgreSQL dialect parses each function argument twice (first
//!   as the name of a named argument, `name => value`, then as a value), and a
//!   parenthesised subquery likewise, so their parse time doubles with every
//!   level: `abs(abs(…))` 30 deep never finishes, and runs on a server worker
//!   where no timeout can stop it (it never yields).
//! - Any nesting (parentheses, CASE … END, runs of NOT, INTERVAL and unary
//!   signs, runs of postfix `IS NULL` / `NOT NULL` tests)
//!   deeper than [`MAX_DEPTH`]. The parsers stop at 50 levels of their own
//!   recursion, and past it some constructs fail with a misleading error
//!   (`SELECT CASE … END` 49 deep as "No field named case").
//!
//! - A chain of more than [`MAX_OPERATOR_CHAIN`] other binary operators
//!   (`1 + 2 + …`, `a || b || …`): it parses left-deep, one level per term,
//!   and DataFusion walks expressions recursively; 3,000 terms overflowed a
//!   2 MiB thread's stack. Unlike AND/OR these cannot be rebalanced without
//!   changing results (floating-point sums, type coercion go left to right).
//!
//! Long AND/OR chains, UNION chains and IN lists are not refused: they are
//! planned as balanced trees (`crate::chains`).

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::{Error, ErrorKind, Result};

/// Function calls and subqueries inside each other.
pub const MAX_CALL_DEPTH: usize = 20;
/// Parentheses, CASE and unary operators inside each other.
pub const MAX_DEPTH: usize = 40;
/// Binary operators other than AND/OR in one chain.
pub const MAX_OPERATOR_CHAIN: usize = 1_000;

/// Refuse `sql` with 54001 when it nests beyond the limits above. Statements
/// too short to reach either limit are passed without tokenizing.
pub fn check_nesting(sql: &str) -> Result<()> {
    let parens = sql.bytes().filter(|b| matches!(b, b'(' | b'[')).count();
    if parens <= MAX_CALL_DEPTH && sql.len() < 2 * MAX_DEPTH {
        return Ok(());
    }
    // A statement that does not tokenize is the parser's to refuse.
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return Ok(()) };
    let (calls, depth, chain) = depths(&tokens);
    if calls > MAX_CALL_DEPTH {
        return Err(too_deep(format!("function calls and subqueries are nested {calls} deep; the limit is {MAX_CALL_DEPTH}")));
    }
    if chain > MAX_OPERATOR_CHAIN {
        return Err(too_deep(format!("an expression chains {chain} operators; the limit is {MAX_OPERATOR_CHAIN}")));
    }
    if depth > MAX_DEPTH {
        return Err(too_deep(format!(
            "parentheses, CASE expressions and unary operators are nested {depth} deep; the limit is {MAX_DEPTH}"
        )));
    }
    Ok(())
}

fn too_deep(what: String) -> Error {
    Error::new(ErrorKind::TooComplex, format!("statement too complex: {what}"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Call,
    Group,
    Case,
}

/// The deepest nesting of calls/subqueries, and of everything, in `tokens`,
/// and the longest operator chain.
fn depths(tokens: &[Token]) -> (usize, usize, usize) {
    // Binary operators since the last separator, per nesting level.
    let mut chains: Vec<usize> = vec![0];
    let mut max_chain = 0;
    // What is open: a call's or subquery's parenthesis, a grouping one, or a CASE.
    let mut open: Vec<Open> = Vec::new();
    let mut calls = 0usize;
    let (mut max_calls, mut max_depth) = (0, 0);
    // Unary operators in a row, on top of the current depth.
    let mut unary_run = 0usize;
    // Postfix IS [NOT] NULL / NOT NULL tests in a row (below).
    let mut postfix_run = 0usize;
    let mut previous: Option<&Token> = None;
    let significant = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
    let mut tokens = significant.peekable();
    while let Some(token) = tokens.next() {
        match token {
            // `ARRAY[…]` parses as a call does (its time doubles per level
            // too: `ARRAY[ARRAY[…` 70 deep never finished); `a[1]` groups.
            Token::LParen | Token::LBracket => {
                let call = matches!(previous, Some(Token::Word(_)))
                    || matches!(tokens.peek(), Some(Token::Word(w)) if matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES));
                open.push(if call { Open::Call } else { Open::Group });
                calls += usize::from(call);
                max_calls = max_calls.max(calls);
            }
            Token::RParen | Token::RBracket => {
                // Up to the matching parenthesis (a CASE left open inside is the parser's to refuse).
                while let Some(o) = open.pop() {
                    match o {
                        Open::Call => {
                            calls -= 1;
                            break;
                        }
                        Open::Group => break,
                        Open::Case => {}
                    }
                }
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => open.push(Open::Case),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                // END also ends a block (`END` = COMMIT); only a CASE's is counted.
                if open.last() == Some(&Open::Case) {
                    open.pop();
                }
            }
            _ => {}
        }
        let unary = match token {
            // `INTERVAL INTERVAL …` nests as NOT does (each parses the next
            // as its operand); a run of thousands overflowed the stack.
            Token::Word(w) => w.quote_style.is_none() && matches!(w.keyword, Keyword::NOT | Keyword::INTERVAL),
            // A sign after an operand (a name, a number, a string, a closing
            // parenthesis) is binary; after a keyword, an operator, a comma or
            // an opening it is unary.
            Token::Minus | Token::Plus => {
                !matches!(
                    previous,
                    Some(Token::Number(..) | Token::RParen | Token::SingleQuotedString(_) | Token::Placeholder(_))
                ) && !matches!(previous, Some(Token::Word(w)) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some())
            }
            _ => false,
        };
        unary_run = if unary { unary_run + 1 } else { 0 };
        // Postfix tests nest too: `a IS NOT NULL NOT NULL …` (Postgres'
        // `x NOT NULL`) is a test of a test of …; in a run of only such
        // words, each NULL, TRUE, FALSE or UNKNOWN right after IS or NOT, and
        // each NOTNULL, is a level. Thousands of them overflowed the stack.
        let after_is_or_not = matches!(previous, Some(Token::Word(p)) if p.quote_style.is_none() && matches!(p.keyword, Keyword::IS | Keyword::NOT));
        postfix_run = match token {
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::NULL | Keyword::TRUE | Keyword::FALSE | Keyword::UNKNOWN if after_is_or_not => postfix_run + 1,
                Keyword::NOTNULL => postfix_run + 1,
                Keyword::IS | Keyword::NOT => postfix_run,
                _ => 0,
            },
            _ => 0,
        };
        max_depth = max_depth.max(open.len() + unary_run.max(postfix_run));
        // Operator chains: counted per level; a comma, a keyword or a new
        // level starts a new chain.
        chains.resize(open.len() + 1, 0);
        let level = open.len();
        match token {
            Token::Plus | Token::Minus if !unary => chains[level] += 1,
            Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Caret
            | Token::Ampersand
            | Token::Pipe
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::Arrow
            | Token::LongArrow => chains[level] += 1,
            Token::Comma | Token::SemiColon | Token::LParen => chains[level] = 0,
            Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => chains[level] = 0,
            _ => {}
        }
        max_chain = max_chain.max(chains[level]);
        previous = Some(token);
    }
    (max_calls, max_depth, max_chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "SELECT 1",
            "SELECT count(*) FROM t WHERE a IN (1, 2, 3) AND (b = 1 OR c = 2)",
            "SELECT coalesce(nullif(trim(lower(name)), ''), 'x') FROM t",
            "CREATE TABLE t (a int NOT NULL DEFAULT NULL, b text NOT NULL, c bool NOT NULL DEFAULT TRUE)",
            "SELECT a FROM t WHERE a IS NOT NULL AND b IS NULL AND (c IS TRUE OR d IS NOT FALSE)",
            "SELECT ARRAY[ARRAY[1, 2], ARRAY[3, 4]], tags[1], m[1][2] FROM t",
            "SELECT * FROM (SELECT a FROM (SELECT a FROM t) s) u WHERE a > -1 AND NOT b",
            "BEGIN; SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t; END",
        ] {
            check_nesting(sql).unwrap();
        }
        check_nesting(&format!("SELECT {}", nested("abs(", "1", ")", MAX_CALL_DEPTH))).unwrap();
        check_nesting(&format!("SELECT {}", nested("(", "1", ")", MAX_DEPTH))).unwrap();
        check_nesting(&format!("SELECT {}", nested("CASE WHEN true THEN ", "1", " END", MAX_DEPTH))).unwrap();
        // Long flat chains are not nesting.
        let chain = (0..5_000).map(|i| format!("v = {i}")).collect::<Vec<_>>().join(" OR ");
        check_nesting(&format!("SELECT count(*) FROM t WHERE {chain}")).unwrap();
        let sum = (0..MAX_OPERATOR_CHAIN).map(|i| format!("-{i}")).collect::<Vec<_>>().join(" - ");
        check_nesting(&format!("SELECT {sum}")).unwrap();
        let many = (0..5_000).map(|i| format!("{i} + 1")).collect::<Vec<_>>().join(", ");
        check_nesting(&format!("SELECT {many}")).unwrap();
    }

    #[test]
    fn deep_statements_are_refused_with_54001() {
        for sql in [
            format!("SELECT {}", nested("abs(", "1", ")", MAX_CALL_DEPTH + 1)),
            format!("SELECT {}", nested("(SELECT ", "1", ")", MAX_CALL_DEPTH + 1)),
            format!("SELECT {}", nested("(", "1", ")", MAX_DEPTH + 1)),
            format!("SELECT {}", nested("CASE WHEN true THEN ", "1", " END", MAX_DEPTH + 1)),
            format!("SELECT {}true", "NOT ".repeat(MAX_DEPTH + 1)),
            format!("SELECT {}1", "- ".repeat(MAX_DEPTH + 1)),
            format!("SELECT day + {}'1 day' FROM t", "INTERVAL ".repeat(MAX_DEPTH + 1)),
            format!("SELECT day + {}'1 day' FROM t", "INTERVAL ".repeat(20_000)),
            format!("UPDATE t SET a = 1 WHERE b IS NOT NULL{}", " NOT NULL".repeat(5_000)),
            format!("SELECT a{} FROM t", " IS NULL".repeat(MAX_DEPTH + 1)),
            format!("SELECT {}1", "ARRAY[ ".repeat(MAX_CALL_DEPTH + 1)),
            format!("SELECT {}", nested("abs(", "1", ")", 20_000)),
            format!("SELECT {}", (0..=MAX_OPERATOR_CHAIN + 1).map(|i| i.to_string()).collect::<Vec<_>>().join(" + ")),
            format!("SELECT 'a'{}", " || 'b'".repeat(MAX_OPERATOR_CHAIN + 1)),
        ] {
            let e = check_nesting(&sql).expect_err(&sql[..sql.len().min(80)]);
            assert_eq!((e.kind(), e.sqlstate()), (ErrorKind::TooComplex, "54001"), "{e}");
            assert!(e.to_string().contains("limit is"), "{e}");
        }
    }
}
