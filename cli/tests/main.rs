//! The built `hb` binary, run as a user would, against a temporary HEAVENBASE_HOME.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod flight;
mod mcp;

struct Hb {
    home: tempfile::TempDir,
}

impl Hb {
    fn new() -> Self {
        Hb { home: tempfile::tempdir().unwrap() }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hb"));
        c.env("HEAVENBASE_HOME", self.home.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and expect success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "hb {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

#[test]
fn setup_workspaces_and_presets() {
    let hb = Hb::new();
    assert!(hb.ok(&["setup"]).contains("workspace 'default' ready"));
    assert!(hb.ok(&["ws", "list"]).contains("default\tpreset 'embedded'"));
    let debug = hb.ok(&["ws", "presets", "show", "debug"]);
    let shown: serde_json::Value = serde_json::from_str(&debug).unwrap();
    assert_eq!(shown["data"]["backends"]["main"], serde_json::json!({"type": "sqlite", "database": ":memory:"}));
    assert_eq!(shown["data"]["backends"]["vec"]["type"], "inmem");
    let lts = hb.ok(&["ws", "presets", "show", "local-lts"]);
    assert!(lts.contains("\"postgres\"") && !lts.contains("\"password\": \"password\""), "passwords are never printed: {lts}");
    assert_eq!(hb.ok(&["ws", "presets"]).lines().collect::<Vec<_>>(), ["debug", "embedded", "local-lts", "web-lts"]);
    let backends = hb.home.path().join("map.json");
    std::fs::write(
        &backends,
        r#"{"main": {"type": "sqlite", "database": "shop", "password": "hunter2"}, "side": {"type": "inmem"}}"#,
    )
    .unwrap();
    assert!(hb.ok(&["ws", "create", "shop", "--backends", backends.to_str().unwrap()]).contains("ready"));
    let shown = hb.ok(&["ws", "show", "shop"]);
    assert!(shown.contains("\"side\"") && shown.contains("\"sqlite\""), "{shown}");
    assert!(!shown.contains("hunter2"), "passwords are never printed: {shown}");
    let meta = hb.ok(&["sql", "-w", "shop", "--format", "csv", "-c", "SELECT meta FROM sys_metaschema WHERE kind = 'workspace'"]);
    assert!(meta.contains("***") && !meta.contains("hunter2"), "nor stored where SQL can read them: {meta}");
    assert!(hb.ok(&["ws", "drop", "shop"]).contains("dropped"));
    let toml = hb.home.path().join("map.toml");
    std::fs::write(&toml, "[main]\ntype = \"sqlite\"\ndatabase = \"lab\"\n\n[vec]\ntype = \"memory\"\n").unwrap();
    assert!(hb.ok(&["ws", "create", "lab", "--backends", toml.to_str().unwrap()]).contains("ready"));
    let shown = hb.ok(&["ws", "show", "lab"]);
    assert!(shown.contains("\"inmem\""), "the memory alias resolves to inmem: {shown}");
    let out = hb.run(&["ws", "show", "shop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No registered workspace 'shop'"));
}

#[test]
fn demo_sql_repl_audit_and_errors() {
    let hb = Hb::new();
    assert!(hb.ok(&["demo"]).contains("product, review"));
    assert_eq!(hb.ok(&["sql", "-w", "demo", "--format", "csv", "-c", "SELECT count(*) AS n FROM product"]).trim(), "n\n2000");
    let json = hb.ok(&[
        "sql",
        "-w",
        "demo",
        "--format",
        "json",
        "-c",
        "SELECT stars, count(*) AS n FROM review GROUP BY stars ORDER BY stars",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 5);
    let total: i64 = rows.as_array().unwrap().iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(total, 3000);
    // The REPL, fed on stdin: meta commands, a statement over two lines, an error
    // that does not end the session.
    let mut child =
        hb.cmd().args(["sql", "-w", "demo"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\\dt\n\\d review\nSELECT count(*) AS n\n  FROM review WHERE stars >= 1;\nSELECT nope FROM review;\nSELECT 41 + 1 AS answer;\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("| product") && stdout.contains("| sys_catalog"), "{stdout}");
    assert!(stdout.contains("product_id") && stdout.contains("varchar(63)"), "{stdout}");
    assert!(stdout.contains("| 3000 |"), "{stdout}");
    assert!(stdout.contains("| 42     |"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    assert_eq!(hb.ok(&["ws", "entities", "demo"]).lines().collect::<Vec<_>>(), ["product", "review"]);
    let script = hb.home.path().join("script.sql");
    std::fs::write(&script, "UPDATE product SET qty = 0 WHERE category = 'rug';\nSELECT count(*) AS n FROM product WHERE category = 'rug' AND qty > 0;").unwrap();
    let out = hb.ok(&["sql", "-w", "demo", "-f", script.to_str().unwrap(), "--format", "csv", "--timing"]);
    assert!(out.contains("n\n0\n") && out.contains("Time: "), "{out}");
    assert!(hb.ok(&["audit", "-w", "demo"]).starts_with("ok: 5000 objects, 5000 catalog cards"));
    assert!(hb.ok(&["repair", "-w", "demo", "--dry-run"]).contains("(dry run)"));
    hb.ok(&["sql", "-w", "demo", "-c", "DELETE FROM sys_catalog WHERE target_entity = 'review' AND object_id IN (SELECT object_id FROM sys_catalog WHERE target_entity = 'review' LIMIT 3)"]);
    let out = hb.run(&["audit", "-w", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing 3"), "{}", String::from_utf8_lossy(&out.stdout));
    let repaired = hb.run(&["repair", "-w", "demo", "--json"]);
    assert!(repaired.status.success());
    let fixed: serde_json::Value = serde_json::from_slice(&repaired.stdout).unwrap();
    assert_eq!((fixed["catalog"]["missing_written"].as_i64(), fixed["ok"].as_bool()), (Some(3), Some(true)));
    // Its progress, on stderr in a pipe: the 4,997 cards left and the 5,000 rows read.
    let progress = String::from_utf8_lossy(&repaired.stderr);
    let last = progress.lines().last().unwrap_or_default();
    assert!(last.starts_with("repair: 9997/9997 rows (100%), ") && last.contains(" rows/s"), "{progress}");
    let explain = hb.ok(&["sql", "-w", "demo", "-c", "EXPLAIN SELECT title FROM product WHERE price < 20"]);
    assert!(explain.contains("BackendScanExec") && explain.contains("\"price\" < ?1"), "{explain}");
    // Full-text search of the reviews' bodies: ranked, best first, as SQL ranks them.
    let out =
        hb.ok(&["search", "-w", "demo", "review", "+drawers humid -late", "--top-k", "3", "--format", "csv", "--fields", "body"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "object_id,name,body,score", "{out}");
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1..].iter().all(|l| l.contains("drawers stick in humid") && !l.contains("Arrived late")), "{out}");
    let sql = hb.ok(&[
        "sql", "-w", "demo", "--format", "csv", "-c",
        "SELECT r.name FROM search('review', 'body', '+drawers humid -late', 3) s JOIN review r USING (object_id) ORDER BY s.score DESC, s.object_id",
    ]);
    let names: Vec<&str> = lines[1..].iter().map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(sql.lines().skip(1).collect::<Vec<_>>(), names, "{sql}");
    // The reviews' `emb` says what each is about (quality, delivery, looks,
    // problems): the nearest to "delivery" talk about delivery, and the hybrid
    // of a text query and "problems" ranks the humid drawers first.
    let near = hb.ok(&[
        "sql",
        "-w",
        "demo",
        "--format",
        "csv",
        "-c",
        "SELECT r.body FROM near('review', 'emb', '[0, 1, 0, 0]', 5) n JOIN review r USING (object_id) ORDER BY n.score DESC",
    ]);
    let bodies: Vec<&str> = near.lines().skip(1).collect();
    assert_eq!(bodies.len(), 5, "{near}");
    assert!(bodies.iter().all(|b| b.contains("Delivery was quick") || b.contains("Arrived late")), "{near}");
    let hybrid = hb.ok(&[
        "sql", "-w", "demo", "--format", "csv", "-c",
        "SELECT r.body FROM hybrid('review', 'body', 'drawers humid', 'emb', '[0, 0, 0, 1]', 3) h JOIN review r USING (object_id) ORDER BY h.score DESC",
    ]);
    let bodies: Vec<&str> = hybrid.lines().skip(1).collect();
    assert_eq!(bodies.len(), 3, "{hybrid}");
    assert!(bodies.iter().all(|b| b.contains("drawers stick in humid")), "{hybrid}");
    // User errors exit 1 with a message and no backtrace.
    let out = hb.run(&["sql", "-w", "demo", "-c", "SELECT * FROM nothing_here"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("hb: ") && err.contains("nothing_here") && !err.contains("panicked"), "{err}");
    let out = hb.run(&["sql", "-c", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hb setup"));
}

#[test]
fn import_and_export_csv_json_ndjson_parquet() {
    let hb = Hb::new();
    hb.ok(&["setup"]);
    let dir = hb.home.path();
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "full_name,age,score,member\nAda Lovelace,36,9.5,true\nAlan Turing,41,9.9,false\nGrace Hopper,85,9.7,true\n",
    )
    .unwrap();
    let out = hb.ok(&["import", csv.to_str().unwrap(), "--entity", "person", "--name-column", "full_name"]);
    assert!(out.contains("imported 3 rows"), "{out}");
    let got = hb.ok(&["sql", "--format", "csv", "-c", "SELECT name, age, member FROM person ORDER BY age"]);
    assert_eq!(got.trim(), "name,age,member\nAda Lovelace,36,true\nAlan Turing,41,false\nGrace Hopper,85,true");
    let id = hb.ok(&["sql", "--format", "csv", "-c", "SELECT object_id FROM person WHERE name = 'Ada Lovelace'"]);
    assert!(id.contains(&heavenbase::catalog::derive_object_id("person", "Ada Lovelace")));
    for ext in ["parquet", "ndjson", "json", "csv"] {
        let file = dir.join(format!("out.{ext}"));
        assert!(hb.ok(&["export", "person", "--to", file.to_str().unwrap()]).contains("exported 3 rows"));
        let entity = format!("copy_{ext}");
        let out = hb.ok(&["import", file.to_str().unwrap(), "--entity", &entity]);
        assert!(out.contains("imported 3 rows"), "{ext}: {out}");
        let n = hb.ok(&["sql", "--format", "csv", "-c", &format!("SELECT count(*) AS n, sum(age) AS s FROM {entity}")]);
        assert_eq!(n.trim(), "n,s\n3,162", "{ext}");
    }
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "name,age\nx,notanumber\n").unwrap();
    hb.ok(&["sql", "-c", "CREATE TABLE strict_people (age BIGINT)"]);
    let out = hb.run(&["import", bad.to_str().unwrap(), "--entity", "strict_people"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("strict_people.age"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(Path::new(&dir.join("workspaces/default/main.sqlite")).exists());
}

/// The REPL's \\timing, \\x (expanded display) and \\copy, fed on stdin.
#[test]
fn repl_timing_expanded_display_and_copy() {
    let hb = Hb::new();
    hb.ok(&["setup"]);
    hb.ok(&["sql", "-c", "CREATE TABLE city (name text, pop bigint)"]);
    let csv = hb.home.path().join("cities.csv");
    std::fs::write(&csv, "name,pop\nLyon,522000\nNantes,320000\n").unwrap();
    let out_csv = hb.home.path().join("out.csv");
    let input = format!(
        "\\copy city FROM '{}'\n\\x\nSELECT name, pop FROM city ORDER BY pop DESC;\n\\x off\n\\timing\nSELECT count(*) AS n FROM city;\n\\copy city TO '{}'\n\\timing maybe\n\\copy city\n\\q\n",
        csv.display(),
        out_csv.display()
    );
    let mut child = hb.cmd().args(["sql"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("COPY 2\nExpanded display is on.\n"), "{stdout}");
    assert!(
        stdout.contains("-[ RECORD 1 ]----\nname | Lyon\npop  | 522000\n-[ RECORD 2 ]----\nname | Nantes\npop  | 320000\n"),
        "{stdout}"
    );
    assert!(stdout.contains("Expanded display is off.\nTiming is on.\n"), "{stdout}");
    assert!(stdout.contains("| 2 |") && stdout.contains("Time: "), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out_csv).unwrap().lines().count(), 3, "header and two rows");
    assert!(stderr.contains("unrecognized value \"maybe\""), "{stderr}");
    assert!(stderr.contains("usage: \\copy ENTITY FROM"), "{stderr}");
}

#[test]
fn version_names_the_engines_and_completions_cover_three_shells() {
    let hb = Hb::new();
    let version = hb.ok(&["--version"]);
    assert!(version.starts_with("hb 0.1.0 (DataFusion 54.") && version.contains(", Lance 14."), "{version}");
    let bash = hb.ok(&["completions", "bash"]);
    assert!(bash.contains("_hb()") && bash.contains("import") && bash.contains("--max-query-memory"), "{bash}");
    let zsh = hb.ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef hb") && zsh.contains("completions"), "{zsh}");
    let fish = hb.ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c hb") && fish.contains("serve"), "{fish}");
    let out = hb.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown shell");
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

/// `hb import` shows a bar with rows/s and ETA on a terminal, plain lines in a pipe.
#[test]
fn import_progress_is_a_bar_on_a_terminal_and_lines_in_a_pipe() {
    let hb = Hb::new();
    hb.ok(&["setup"]);
    let csv = hb.home.path().join("big.csv");
    let mut text = String::from("name,n\n");
    for i in 0..30_000 {
        text.push_str(&format!("row {i},{i}\n"));
    }
    std::fs::write(&csv, text).unwrap();

    let out = hb.run(&["import", csv.to_str().unwrap(), "--entity", "piped"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("import piped: 30000/30000 rows (100%), ") && last.contains(" rows/s, ETA 0s"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "no bar without a terminal: {err:?}");

    // Under a pseudo-terminal (util-linux `script` gives the command one).
    let command = format!("{} import {} --entity tty", env!("CARGO_BIN_EXE_hb"), csv.display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HEAVENBASE_HOME", hb.home.path())
        .env("TERM", "xterm")
        .output()
        .expect("util-linux script");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("import tty [") && screen.contains("30,000/30,000 rows"), "{screen:?}");
    assert!(screen.contains(" rows/s") && screen.contains("ETA "), "{screen:?}");
    assert!(screen.contains("imported 30000 rows into tty"), "{screen:?}");
    assert_eq!(hb.ok(&["sql", "--format", "csv", "-c", "SELECT count(*) AS n FROM tty"]).trim(), "n\n30000");
}

/// Whether psql can be run; under CI it must be (the test fails), elsewhere
/// the caller skips, saying why.
fn has_psql() -> bool {
    if Command::new("psql").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "psql is required under CI");
    eprintln!("skipped: psql is not installed");
    false
}

/// Wait (up to 20 s) until a server listens on 127.0.0.1:`port`.
fn wait_listening(port: &str) {
    let port: u16 = port.parse().unwrap();
    let up = (0..400).any(|_| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        }
    });
    assert!(up, "server did not start");
}

#[test]
fn serve_answers_psql_and_stops_on_sigterm() {
    if !has_psql() {
        return;
    }
    let hb = Hb::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut server = hb.cmd().args(["serve", "--demo", "--port", &port]).stdout(Stdio::piped()).spawn().unwrap();
    wait_listening(&port);
    // What it prints is ready to paste: psql, JDBC and SQLAlchemy.
    let mut printed = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut said = String::new();
    for _ in 0..4 {
        std::io::BufRead::read_line(&mut printed, &mut said).unwrap();
    }
    assert!(said.contains(&format!("psql \"host=127.0.0.1 port={port} dbname=demo\"")), "{said}");
    assert!(said.contains(&format!("jdbc:postgresql://127.0.0.1:{port}/demo")), "{said}");
    assert!(said.contains(&format!("postgresql+psycopg://127.0.0.1:{port}/demo")), "{said}");
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "demo",
            "-X",
            "-A",
            "-t",
            "-c",
            // The README's own example.
            "SELECT category, count(*), round(avg(price), 2) FROM product GROUP BY category ORDER BY category",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let categories: Vec<&str> = stdout.lines().map(|l| l.split('|').next().unwrap()).collect();
    assert_eq!(categories, ["chair", "desk", "lamp", "rug", "shelf"], "{stdout}");
    let counted: i64 = stdout.lines().map(|l| l.split('|').nth(1).unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(counted, 2000);
    Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

/// `hb serve` with a memory limit starts itself again with glibc's allocator
/// held to one arena per core and large blocks mapped on their own (the
/// caller's own tunables kept), under the same process id, and serves: a sort
/// past the limit spills and answers over psql. (What the settings do to the
/// server's memory is measured by `benchmarks memory`.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn serve_with_a_memory_limit_bounds_the_allocator() {
    if !has_psql() {
        return;
    }
    let hb = Hb::new();
    hb.ok(&["setup"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut server = hb
        .cmd()
        .args(["serve", "-w", "default", "--port", &port, "--max-query-memory", "16MB"])
        .env("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&port);
    // The same process, started again with the allocator's settings (glibc
    // applies GLIBC_TUNABLES at start and keeps them out of the environment
    // it shows, so the marker is what can be read here).
    let environ = std::fs::read(format!("/proc/{}/environ", server.id())).unwrap();
    let environ = String::from_utf8_lossy(&environ).split('\0').map(String::from).collect::<Vec<_>>();
    assert!(environ.contains(&"HEAVENBASE_ALLOCATOR=bounded".to_string()), "{environ:?}");
    assert!(
        environ.iter().any(|v| v.starts_with("GLIBC_TUNABLES=glibc.malloc.tcache_count=7")),
        "the caller's kept: {environ:?}"
    );
    let sort = "SELECT max(r), min(k) FROM (SELECT row_number() OVER (ORDER BY (value * 7919) % 2000003) AS r, \
                (value * 7919) % 2000003 AS k FROM generate_series(1, 2000000)) t";
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "default", "-X", "-A", "-t", "-c", sort])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2000000|1");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A Parquet file with the Arrow types other tools write (int32, decimal,
/// timestamps in nanoseconds without a zone) imports every value: the Arrow
/// write path casts them, where the JSON round trip read them as NULL.
#[tokio::test]
async fn import_keeps_values_of_other_arrow_types() {
    use datafusion::dataframe::DataFrameWriteOptions;
    let hb = Hb::new();
    hb.ok(&["setup"]);
    let file = hb.home.path().join("typed.parquet");
    let ctx = datafusion::prelude::SessionContext::new();
    let df = ctx
        .sql(
            "SELECT 'one' AS label, CAST(7 AS INT) AS n, CAST(2.5 AS DECIMAL(10, 2)) AS d, \
              CAST('2024-01-02 03:04:05' AS TIMESTAMP) AS at",
        )
        .await
        .unwrap();
    df.write_parquet(file.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None).await.unwrap();
    let out = hb.ok(&["import", file.to_str().unwrap(), "--entity", "typed", "--name-column", "label"]);
    assert!(out.contains("imported 1 rows"), "{out}");
    let got = hb.ok(&["sql", "--format", "csv", "-c", "SELECT name, n, d, CAST(at AS BIGINT) AS ms FROM typed"]);
    assert_eq!(got.trim(), "name,n,d,ms\none,7,2.5,1704164645000", "{got}");
}

/// `local-lts` opens completely: `main` in the Postgres of `HEAVENBASE_TEST_PG`,
/// `vec` in Lance under the workspace folder, `search` in the
/// OpenSearch-compatible server of `HEAVENBASE_TEST_OPENSEARCH` (.ci/run starts both).
#[test]
fn the_local_lts_preset_opens_with_postgres_lance_and_a_search_server() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let (Ok(pg), Ok(search)) = (std::env::var("HEAVENBASE_TEST_PG"), std::env::var("HEAVENBASE_TEST_OPENSEARCH")) else {
        assert!(!ci, "HEAVENBASE_TEST_PG and HEAVENBASE_TEST_OPENSEARCH are set by .ci/run");
        eprintln!("skipped: HEAVENBASE_TEST_PG or HEAVENBASE_TEST_OPENSEARCH is not set");
        return;
    };
    // postgres://USER[:PASSWORD]@HOST:PORT/DB
    let rest = pg.split_once("://").map_or(pg.as_str(), |(_, r)| r);
    let (userinfo, hostpart) = rest.split_once('@').expect("HEAVENBASE_TEST_PG names a user");
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (hostport, db) = hostpart.split_once('/').unwrap_or((hostpart, "postgres"));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    let hb = Hb::new();
    let id = format!(
        "lts_{}",
        hb.home.path().file_name().unwrap().to_string_lossy().to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let run = |args: &[&str]| {
        let out = hb
            .cmd()
            .env("HVNB_LOCAL_LTS_POSTGRES_HOST", host)
            .env("HVNB_LOCAL_LTS_POSTGRES_PORT", port)
            .env("HVNB_LOCAL_LTS_POSTGRES_DB", db.split('?').next().unwrap())
            .env("HVNB_LOCAL_LTS_POSTGRES_USER", user)
            .env("HVNB_LOCAL_LTS_POSTGRES_PASSWORD", password)
            .env("HVNB_LOCAL_LTS_ES_URL", &search)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "hb {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(run(&["ws", "create", &id, "--preset", "local-lts"]).contains("ready"));
    run(&["sql", "-w", &id, "-c", "CREATE TABLE note (id integer PRIMARY KEY, body text, emb vector(3)) WITH (search = 'body')"]);
    run(&[
        "sql",
        "-w",
        &id,
        "-c",
        "INSERT INTO note VALUES (1, 'an okapi at rest', '[1,0,0]'), (2, 'a zebra crossing', '[0,1,0]'), (3, 'zebra and okapi', '[0,0,1]')",
    ]);
    let plan = run(&["sql", "-w", &id, "-c", "EXPLAIN SELECT * FROM search('note', 'body', 'zebra')"]);
    assert!(plan.contains("backend=search (elasticsearch)") && plan.contains("elasticsearch BM25 on index"), "{plan}");
    let out = run(&["search", "-w", &id, "note", "zebra -okapi", "--format", "csv", "--fields", "body"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].contains("a zebra crossing"), "{out}");
    let out = run(&[
        "sql",
        "-w",
        &id,
        "--format",
        "csv",
        "-c",
        "SELECT n.id, h.text_rank, h.vector_rank FROM hybrid('note', 'body', 'okapi', 'emb', '[0,0,1]', 3) h \
         JOIN note n USING (object_id) ORDER BY h.score DESC, n.id",
    ]);
    // 3 is the shorter text with okapi (BM25 ranks it first) and nearest to [0,0,1].
    assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ["3,1,1", "1,2,2", "2,,3"], "{out}");
    run(&["sql", "-w", &id, "-c", "DROP TABLE note"]);
    assert!(run(&["ws", "drop", &id]).contains("dropped"));
}
