//! Hostile input over a real socket: garbage bytes, malformed and oversized
//! protocol messages, huge and deeply nested statements, and random SQL from
//! several clients at once. Each gets an answer or an error; the server never
//! stops, and a session that did nothing wrong keeps being served throughout.

use std::time::Duration;

use heavenbase_tests::frontend::{message, startup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestHome;
use crate::sql::load;
use crate::wire::{connect, start};

/// A small deterministic generator (xorshift64*), so a failure replays.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(crate) fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Send `bytes` on a fresh connection (after a proper startup when `logged_in`),
/// then read whatever comes back until the server closes or goes quiet.
/// Returns what the server sent after the startup exchange.
pub(crate) async fn send_raw(port: u16, logged_in: bool, bytes: &[u8]) -> Vec<u8> {
    send_raw_waiting(port, logged_in, bytes, Duration::from_millis(500)).await
}

/// [`send_raw`], taking the server's silence for `quiet` as its last word.
pub(crate) async fn send_raw_waiting(port: u16, logged_in: bool, bytes: &[u8], quiet: Duration) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    if logged_in {
        socket.write_all(&startup("postgres", "sqlite")).await.unwrap();
        // Up to ReadyForQuery ('Z', length 5, status).
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(6).any(|w| w[0] == b'Z' && w[1..5] == [0, 0, 0, 5]) {
            let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.expect("startup answers").unwrap();
            assert!(n > 0, "the server closed during startup");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    // The server may close before taking everything: that is an answer too.
    let _ = socket.write_all(bytes).await;
    let _ = socket.flush().await;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, socket.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    reply
}

/// Garbage before and after the startup exchange, messages that lie about
/// their length, counts larger than the message, a cut-off message: each is
/// refused (an ErrorResponse or a closed socket), and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socket_never_stops_the_server() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let bystander = connect(port, "sqlite").await;
    let still_served = || async {
        let n: i64 = bystander.query_one("SELECT count(*) FROM product", &[]).await.expect("the bystander is served").get(0);
        assert_eq!(n, 4);
    };

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Before startup: random bytes, and startup packets that lie.
    let mut before: Vec<Vec<u8>> = (0..40).map(|i| rng.bytes(1 + (i * 97) % 3000)).collect();
    before.push((-1i32).to_be_bytes().to_vec());
    before.push([&8i32.to_be_bytes()[..], &1234i32.to_be_bytes()].concat());
    before.push([&(i32::MAX).to_be_bytes()[..], &196_608i32.to_be_bytes()].concat());
    before.push([&3i32.to_be_bytes()[..], b"x"].concat());
    before.push([&12i32.to_be_bytes()[..], &196_608i32.to_be_bytes(), b"user"].concat());
    for bytes in &before {
        send_raw(port, false, bytes).await;
    }
    still_served().await;

    // After a proper startup: messages of every kind with random bodies and
    // lengths that lie, in both directions.
    let tags = [b'Q', b'P', b'B', b'E', b'D', b'C', b'S', b'H', b'd', b'c', b'f', b'F', b'p', b'X', b'?', 0u8];
    let mut after: Vec<Vec<u8>> = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let body = rng.bytes(3 + i * 13);
        after.push(message(*tag, body.len() as i32 + 4, &body));
        after.push(message(*tag, 0, &body));
        after.push(message(*tag, -7, &body));
        after.push(message(*tag, i32::MAX, &body));
        after.push(message(*tag, body.len() as i32 + 400, &body));
    }
    // A Bind announcing 30,000 parameters in a 20-byte message; a Parse of a
    // statement with an unterminated name; a Query without its NUL.
    after.push(message(b'B', 14, &[0, 0, 0, 0, 0x75, 0x30, 0, 0, 0, 0]));
    after.push(message(b'P', 9, b"stmt\x00"));
    after.push(message(b'Q', 12, b"SELECT 1"));
    // A Parse announcing five parameter types and holding none: pgwire's
    // decoder overruns the message (it panicked inside the connection's task);
    // the answer is Postgres' for a malformed message, FATAL 08P01.
    let mut body = b"s\0SELECT 1\0".to_vec();
    body.extend_from_slice(&5i16.to_be_bytes());
    let reply = send_raw(port, true, &message(b'P', body.len() as i32 + 4, &body)).await;
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("FATAL") && text.contains("08P01"), "{text}");
    still_served().await;
    for bytes in &after {
        let reply = send_raw(port, true, bytes).await;
        // Whatever came back is a well-formed ErrorResponse or nothing (a close).
        if let Some(first) = reply.first() {
            assert!(
                matches!(*first, b'E' | b'T' | b'D' | b'C' | b'Z' | b'1' | b'2' | b'3' | b'n' | b't' | b's' | b'I' | b'G'),
                "unexpected reply {:?} to {:?}",
                &reply[..reply.len().min(16)],
                &bytes[..bytes.len().min(16)]
            );
        }
        still_served().await;
    }
}

/// Statements built to exhaust the planner: deep nesting of every kind,
/// thousands of UNIONs, a 16 MB literal, a 50,000-item IN list. Each is
/// answered or refused with an error carrying a SQLSTATE; none stops the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_deeply_nested_statements_get_answers_or_errors() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws).await;
    let client = connect(port, "sqlite").await;
    let bystander = connect(port, "sqlite").await;

    let nested = |open: &str, inner: &str, close: &str, n: usize| format!("{}{inner}{}", open.repeat(n), close.repeat(n));
    let mut statements: Vec<(String, String)> = Vec::new();
    for depth in [60, 200, 1_000, 20_000] {
        statements.push((format!("{depth} parentheses"), format!("SELECT {}", nested("(", "1", ")", depth))));
        statements.push((format!("{depth} unary minus"), format!("SELECT {}1", "- ".repeat(depth))));
        statements.push((format!("{depth} NOTs"), format!("SELECT {}true", "NOT ".repeat(depth))));
        statements.push((format!("{depth} scalar subqueries"), format!("SELECT {}", nested("(SELECT ", "1", ")", depth))));
        statements
            .push((format!("{depth} nested CASEs"), format!("SELECT {}", nested("CASE WHEN true THEN ", "1", " END", depth))));
        statements.push((format!("{depth} function calls"), format!("SELECT {}", nested("abs(", "1", ")", depth))));
        statements.push((
            format!("{depth} derived tables"),
            format!("SELECT * FROM {} t", nested("(SELECT * FROM ", "product", ") s", depth)),
        ));
    }
    for n in [100, 1_000, 3_000] {
        let unions = (0..n).map(|i| format!("SELECT {i}")).collect::<Vec<_>>().join(" UNION ALL ");
        statements.push((format!("{n} UNIONs"), unions));
        let plus = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(" + ");
        statements.push((format!("{n}-term sum"), format!("SELECT {plus}")));
    }
    statements.push(("16 MB literal".into(), format!("SELECT length('{}')", "x".repeat(16 << 20))));
    let items = (0..50_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    statements.push(("50,000-item IN list".into(), format!("SELECT count(*) FROM product WHERE price IN ({items})")));

    for (what, sql) in &statements {
        for extended in [false, true] {
            let run = async {
                if extended {
                    client.query(sql.as_str(), &[]).await.map(|_| ())
                } else {
                    client.simple_query(sql).await.map(|_| ())
                }
            };
            let result =
                tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("{what}: no answer"));
            if let Err(e) = result {
                let db = e.as_db_error().unwrap_or_else(|| panic!("{what} (extended={extended}): not a server error: {e}"));
                assert!(
                    matches!(db.code().code(), "54001" | "54000" | "42601" | "0A000" | "53200"),
                    "{what} (extended={extended}): {} {}",
                    db.code().code(),
                    db.message()
                );
            }
            let n: i64 = bystander.query_one("SELECT count(*) FROM product", &[]).await.expect("the server goes on").get(0);
            assert_eq!(n, 4, "{what}");
        }
    }
    // Answered, with the right values: 3,000 UNIONs (planned as a balanced
    // tree), a 16 MB literal, nesting up to the limits.
    let client = &client;
    let one = |sql: String| async move {
        let rows = client.simple_query(&sql).await.unwrap_or_else(|e| panic!("{}: {e}", &sql[..sql.len().min(60)]));
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
                _ => None,
            })
            .expect("a row")
    };
    let unions = (0..3_000).map(|i| format!("SELECT {i} AS v")).collect::<Vec<_>>().join(" UNION ALL ");
    assert_eq!(one(format!("SELECT count(*), sum(v) FROM ({unions}) t")).await, "3000");
    assert_eq!(one(format!("SELECT sum(v) FROM ({unions}) t")).await, "4498500");
    assert_eq!(one(format!("SELECT length('{}')", "x".repeat(16 << 20))).await, (16 << 20).to_string());
    let sum = (1..=1_000).map(|i| i.to_string()).collect::<Vec<_>>().join(" + ");
    assert_eq!(one(format!("SELECT {sum}")).await, "500500");
    assert_eq!(one(format!("SELECT {}", nested("(", "7", ")", 40))).await, "7");
    assert_eq!(one(format!("SELECT {}", nested("abs(", "-7", ")", 20))).await, "7");
    assert_eq!(one(format!("SELECT {}", nested("CASE WHEN true THEN ", "7", " END", 40))).await, "7");
    // Past them, 54001 with the depth found.
    let e = client.simple_query(&format!("SELECT {}", nested("abs(", "1", ")", 30))).await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "54001");
    assert!(db.message().contains("nested 30 deep"), "{}", db.message());
    let sum = (1..=3_000).map(|i| i.to_string()).collect::<Vec<_>>().join(" + ");
    let e = client.simple_query(&format!("SELECT {sum}")).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "54001");
}

/// Eight clients send random statements for a while: well-formed and not,
/// reads and writes, over both protocols. Every statement is answered (rows or
/// an error with a SQLSTATE); at the end the workspace audits clean and holds
/// exactly the rows the acknowledged writes made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_statements_from_many_clients_leave_a_consistent_workspace() {
    let h = TestHome::new();
    let ws = h.open("soak", heavenbase::Construction::preset("embedded")).await;
    let port = start(ws.clone()).await;
    let setup = connect(port, "soak").await;
    setup.batch_execute("CREATE TABLE note (id integer PRIMARY KEY, body text, score double precision)").await.unwrap();
    let clients = 8;
    let per_client = 150;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = connect(port, "soak").await;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
            let mut inserted = Vec::new();
            let mut deleted = Vec::new();
            let columns = ["id", "body", "score", "object_id", "name", "nope", "*", "1"];
            let ops = ["=", "<", ">", "<>", "LIKE", "IN", "IS", "+", "||", "/"];
            let values = ["1", "'a'", "NULL", "0", "-1", "1e308", "'%'", "(SELECT 1)", "''", "2147483648"];
            for i in 0..per_client {
                let extended = rng.below(2) == 0;
                let sql = match rng.below(6) {
                    // A write whose success is counted.
                    0 => {
                        let id = (c * 10_000 + i) as i64;
                        let sql = format!("INSERT INTO note VALUES ({id}, 'n{id}', {})", rng.below(100));
                        let ok = client.execute(sql.as_str(), &[]).await;
                        if ok.is_ok() {
                            inserted.push(id);
                        }
                        continue;
                    }
                    1 if !inserted.is_empty() => {
                        let id = inserted.swap_remove(rng.below(inserted.len()));
                        let n =
                            client.execute("DELETE FROM note WHERE id = $1", &[&id]).await.expect("a delete of an existing row");
                        assert_eq!(n, 1);
                        deleted.push(id);
                        continue;
                    }
                    2 => format!(
                        "SELECT {} FROM note WHERE {} {} {} ORDER BY 1 LIMIT {}",
                        rng.pick(&columns),
                        rng.pick(&columns),
                        rng.pick(&ops),
                        rng.pick(&values),
                        rng.below(5)
                    ),
                    3 => format!(
                        "SELECT count(*), {}(score) FROM note GROUP BY {} HAVING count(*) {} {}",
                        rng.pick(&["sum", "avg", "min", "max", "nope", "count"]),
                        rng.pick(&columns),
                        rng.pick(&ops),
                        rng.pick(&values)
                    ),
                    4 => format!(
                        "UPDATE note SET score = score {} {} WHERE id {} {}",
                        rng.pick(&["+", "*", "/", "||"]),
                        rng.pick(&values),
                        rng.pick(&ops),
                        rng.pick(&values)
                    ),
                    // Truncated or shuffled SQL.
                    _ => {
                        let words =
                            ["SELECT", "FROM", "note", "WHERE", "(", ")", ",", "id", "'", "JOIN", "ON", "GROUP", "BY", ";", "1"];
                        (0..1 + rng.below(12)).map(|_| rng.pick(&words)).collect::<Vec<_>>().join(" ")
                    }
                };
                let result = if extended {
                    client.query(sql.as_str(), &[]).await.map(|_| ())
                } else {
                    client.simple_query(&sql).await.map(|_| ())
                };
                if let Err(e) = result {
                    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: not a server error: {e}"));
                    assert_ne!(db.code().code(), "XX000", "{sql}: {}", db.message());
                }
            }
            (inserted, deleted)
        }));
    }
    let mut alive = Vec::new();
    for task in tasks {
        let (inserted, _) = task.await.expect("a client's statements were all answered");
        alive.extend(inserted);
    }
    alive.sort_unstable();
    let rows = setup.query("SELECT id FROM note ORDER BY id", &[]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, alive, "exactly the acknowledged inserts, less the acknowledged deletes");
    let audit = ws.audit().await.unwrap();
    assert!(audit.ok(), "{:?}", audit.to_json());
}

/// sqlsmith, the random-query tester for Postgres servers, loads a served
/// workspace's catalog (types, tables, columns, constraints, operators,
/// functions and aggregates from pg_catalog and information_schema) and sends
/// random queries, each in a transaction it rolls back, for up to 60 s. Every
/// query gets an answer or an error, no connection is broken, the workspace
/// holds the rows it held, and a new connection is served afterwards. The
/// share of queries answered is printed: an error is a statement we refuse or
/// cannot plan, never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlsmith_cannot_bring_the_server_down() {
    let available = std::process::Command::new("sqlsmith").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available {
        assert!(std::env::var("CI").is_err(), "sqlsmith must be installed under CI (.ci/run installs it)");
        eprintln!("skipped: sqlsmith is not installed");
        return;
    }
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let before = ws.count("product").await.unwrap();
    let port = start(ws.clone()).await;
    let target = format!("--target=host=127.0.0.1 port={port} user=postgres dbname=sqlite");
    let mut child = tokio::process::Command::new("sqlsmith")
        .args([target.as_str(), "--seed=20261206", "--verbose", "--max-queries=20000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sqlsmith starts");
    // Its catalog loads first (thousands of catalog queries: slower on a busy
    // machine), then it generates queries; those get 60 s.
    let mut stderr = child.stderr.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&seen.lock().unwrap()).into_owned()
        })
    };
    let loaded = |seen: &std::sync::Mutex<Vec<u8>>| String::from_utf8_lossy(&seen.lock().unwrap()).contains("Generating indexes");
    let load_started = std::time::Instant::now();
    while !loaded(&seen) && load_started.elapsed() < Duration::from_secs(300) {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let finished = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.is_ok();
    if !finished {
        let _ = child.kill().await;
    }
    let log = reader.await.unwrap();
    // --verbose prints the catalog it loaded, then one mark per query, in
    // rows of their own: `.` answered, `e` an error, `S` a syntax error, `t`
    // a timeout, `C` a broken connection. Every few hundred queries it
    // reports its most frequent errors (`count<TAB>ERROR: …`).
    assert!(
        log.contains("Loading routine parameters...done") && log.contains("Loading aggregates...done"),
        "the catalog loads:\n{log}"
    );
    let marks: String = log.lines().filter(|l| !l.is_empty() && l.chars().all(|c| ".eSCt".contains(c))).collect();
    let count = |mark: char| marks.chars().filter(|&c| c == mark).count();
    let (ok, errors, syntax, timeouts, broken) = (count('.'), count('e'), count('S'), count('t'), count('C'));
    let total = marks.len();
    println!(
        "sqlsmith: {total} queries in {}: {ok} answered ({:.1}%), {errors} errors, {syntax} syntax errors, {timeouts} timeouts, {broken} broken connections",
        if finished { "its run" } else { "60 s" },
        100.0 * ok as f64 / total.max(1) as f64,
    );
    let last_report: Vec<&str> =
        log.lines().rev().skip_while(|l| !l.contains("\tERROR")).take_while(|l| l.contains("\tERROR")).collect();
    println!(
        "its most frequent errors, last report:\n{}",
        last_report.iter().rev().take(10).copied().collect::<Vec<_>>().join("\n")
    );
    assert!(total >= 100, "sqlsmith sent queries:\n{log}");
    assert!(ok > 0, "some queries are answered:\n{log}");
    assert_eq!(broken, 0, "no query breaks its connection:\n{log}");
    // Its writes were rolled back; the server still serves.
    assert_eq!(ws.count("product").await.unwrap(), before);
    let client = connect(port, "sqlite").await;
    let one: i64 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}
