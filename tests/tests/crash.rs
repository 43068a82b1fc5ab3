//! Crash atomicity: a child process writes objects whose fields live in two
//! backends (SQLite or Postgres for `main`, Lance for the vectors) and is
//! killed with SIGKILL at random moments. Every reopen must pass `audit()`
//! without `repair`, every write the child acknowledged must be there, and no
//! object may be half written (its category and its vector always come from
//! the same write). A served workspace killed under 8 writing clients keeps
//! every acknowledged row and update.
//!
//! The children are the `crash_child` program of this package
//! (tests/src/bin/crash_child.rs, its writes in tests/src/crash.rs).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heavenbase::{Construction, EntityDef, FieldDef, Home, LogicalType as T, Workspace};
use heavenbase_tests::crash::{Rng, doc, vector_of};
use serde_json::{Value as Json, json};

use crate::common::{TestHome, drop_pg_schemas, pg_url};

/// The child processes the crash tests start and kill.
const CHILD: &str = env!("CARGO_BIN_EXE_crash_child");

/// What the parent knows of each name: its last acknowledged write (None =
/// deleted, Some(v) = written with version v), and whether a write was in
/// flight when the child died.
#[derive(Default)]
struct Model {
    acked: HashMap<String, Option<i64>>,
    in_doubt: Vec<String>,
    last_version: i64,
}

impl Model {
    fn read(&mut self, lines: Vec<String>) -> usize {
        let mut acks = 0;
        self.in_doubt.clear();
        for line in lines {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("HB"), Some("begin")) => self.in_doubt = words.map(String::from).collect(),
                (Some("HB"), Some("ack")) => {
                    let version: i64 = words.next().unwrap().parse().unwrap();
                    self.last_version = self.last_version.max(version);
                    for w in words {
                        let (n, op) = w.split_once(':').unwrap();
                        self.acked.insert(n.to_string(), (op == "put").then_some(version));
                    }
                    acks += 1;
                    self.in_doubt.clear();
                }
                _ => {}
            }
        }
        acks
    }
}

/// Start the writer child and kill it with SIGKILL `after` its first write.
fn run_child(dir: &std::path::Path, backends: &Json, seed: u64, version: i64, after: Duration) -> Vec<String> {
    let mut child: Child = Command::new(CHILD)
        .arg("writer")
        .env("HB_CRASH_HOME", dir)
        .env("HB_CRASH_BACKENDS", backends.to_string())
        .env("HB_CRASH_SEED", seed.to_string())
        .env("HB_CRASH_VERSION", version.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let started = Instant::now();
    // Wait for the first acknowledged write (opening may replay the journal first).
    let mut killed_at = None;
    while killed_at.is_none() || Instant::now() < killed_at.unwrap() {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                if killed_at.is_none() && line.starts_with("HB ack") {
                    killed_at = Some(Instant::now() + after);
                }
                lines.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the writer child ended before it was killed: {:?}", child.wait())
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the writer child never acknowledged a write");
    }
    child.kill().expect("SIGKILL the writer child");
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

/// Open the workspace after a kill and check it: audit ok without repair,
/// every acknowledged write present, no object half written. Returns how many
/// journal entries the open replayed.
async fn check_after_crash(dir: &std::path::Path, backends: &Json, model: &Model, run: usize) -> (usize, HashMap<String, i64>) {
    let ws = Workspace::open_in(&Home::new(dir), "crash", Construction::Backends(backends.clone())).await.unwrap();
    let audit = ws.audit().await.unwrap();
    assert!(audit.ok(), "run {run}: audit after SIGKILL, without repair: {}", audit.to_json());
    let rows = ws.query("doc").unwrap().select(["name", "version", "emb"]).rows().await.unwrap();
    let mut stored: HashMap<String, i64> = HashMap::new();
    for r in &rows {
        let version = r["version"].as_i64().unwrap();
        let emb: Vec<f32> = r["emb"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(
            emb,
            vector_of(version),
            "run {run}: {} is half written: version {version} with another write's vector",
            r["name"]
        );
        stored.insert(r["name"].as_str().unwrap().to_string(), version);
    }
    for (n, want) in &model.acked {
        if !model.in_doubt.contains(n) {
            assert_eq!(stored.get(n).copied(), *want, "run {run}: {n} after its acknowledged write");
        }
    }
    // The write the kill cut off happened wholly or not at all: each of its
    // objects is as before, written with its version, or deleted.
    let cut_off = model.last_version + 1;
    for n in &model.in_doubt {
        let got = stored.get(n).copied();
        let before = model.acked.get(n).copied().flatten();
        assert!(got == before || got == Some(cut_off) || got.is_none(), "run {run}: {n} is {got:?}, was {before:?}");
    }
    let replayed = audit.journal_replayed;
    drop(ws);
    (replayed, stored)
}

async fn crash_runs(dir: &std::path::Path, backends: Json, runs: usize, seed: u64) -> (usize, usize) {
    let mut model = Model::default();
    let (mut acks, mut replayed) = (0, 0);
    let mut rng = Rng(seed);
    for run in 0..runs {
        let after = Duration::from_millis(50 + rng.below(700));
        let lines = run_child(dir, &backends, rng.next() | 1, model.last_version, after);
        acks += model.read(lines);
        let (r, stored) = check_after_crash(dir, &backends, &model, run).await;
        replayed += r;
        // What the cut-off write left is what the next run starts from.
        for n in std::mem::take(&mut model.in_doubt) {
            model.acked.insert(n.clone(), stored.get(&n).copied());
        }
        model.last_version += 1;
    }
    (acks, replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_spanning_sqlite_and_lance_survive_sigkill() {
    let h = TestHome::new();
    let backends = json!({
        "main": {"type": "sqlite", "database": format!("file://{}/main.sqlite", h.dir.path().display())},
        "vec": {"type": "lance", "uri": format!("file://{}/lance", h.dir.path().display())},
    });
    let (acks, replayed) = crash_runs(h.dir.path(), backends, 20, 0x5eed_0001).await;
    println!("sqlite + lance: 20 kills, {acks} acknowledged writes checked, {replayed} journal entries replayed");
    assert!(acks >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_spanning_postgres_and_lance_survive_sigkill() {
    if pg_url().is_none() {
        return;
    }
    let h = TestHome::new();
    let backends = json!({
        "main": h.postgres("crash").await,
        "vec": {"type": "lance", "uri": format!("file://{}/lance", h.dir.path().display())},
    });
    let (acks, replayed) = crash_runs(h.dir.path(), backends, 20, 0x5eed_0002).await;
    println!("postgres + lance: 20 kills, {acks} acknowledged writes checked, {replayed} journal entries replayed");
    assert!(acks >= 20);
    drop_pg_schemas(&[h.pg_schema("crash")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_left_in_the_journal_is_replayed_on_open() {
    let h = TestHome::new();
    let dir = h.dir.path().to_path_buf();
    let backends = json!({
        "main": {"type": "sqlite", "database": format!("file://{}/main.sqlite", dir.display())},
        "vec": {"type": "lance", "uri": format!("file://{}/lance", dir.display())},
    });
    let id = {
        let ws = h.open("crash", Construction::Backends(backends.clone())).await;
        ws.register(doc(), false).await.unwrap();
        ws.upsert("doc", json!({"name": "a", "version": 1, "emb": vector_of(1)})).await.unwrap()
    };
    let out = Command::new(CHILD)
        .arg("one-write")
        .env("HB_CRASH_HOME", &dir)
        .env("HB_CRASH_BACKENDS", backends.to_string())
        .env("HEAVENBASE_TEST_CRASH_POINT", "journaled")
        .output()
        .unwrap();
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("HB not aborted"), "the child aborted");
    // What the crash left: SQLite has version 2 and the journal entry, Lance version 1.
    {
        let db = rusqlite::Connection::open(dir.join("main.sqlite")).unwrap();
        let version: i64 = db.query_row("SELECT version FROM doc", [], |r| r.get(0)).unwrap();
        let entries: i64 = db.query_row("SELECT count(*) FROM _hb_journal", [], |r| r.get(0)).unwrap();
        assert_eq!((version, entries), (2, 1));
    }
    let ws = Workspace::open_in(&h.home, "crash", Construction::Backends(backends.clone())).await.unwrap();
    let audit = ws.audit().await.unwrap();
    assert!(audit.ok() && audit.journal_replayed == 1, "{}", audit.to_json());
    assert_eq!(audit.to_json()["journal"]["replayed"], json!(1));
    let row = ws.get("doc", &id).await.unwrap().unwrap();
    assert_eq!((row["version"].clone(), row["emb"].clone()), (json!(2), json!(vector_of(2))));
    let db = rusqlite::Connection::open(dir.join("main.sqlite")).unwrap();
    assert_eq!(db.query_row("SELECT count(*) FROM _hb_journal", [], |r| r.get::<_, i64>(0)).unwrap(), 0);
    // A write that spans one backend only journals nothing.
    let note = EntityDef::new("note").field(FieldDef::new("body", T::short_text()));
    ws.register(note, false).await.unwrap();
    ws.upsert("note", json!({"name": "n", "body": "b"})).await.unwrap();
    assert_eq!(db.query_row("SELECT count(*) FROM _hb_journal", [], |r| r.get::<_, i64>(0)).unwrap(), 0);
}

fn start_server_child(dir: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(CHILD)
        .arg("serve")
        .env("HB_CRASH_HOME", dir)
        .env("HB_CRASH_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server child");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("HB ready") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the server child ended before it was ready");
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_workspace_killed_under_load_keeps_acknowledged_writes() {
    let h = TestHome::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = start_server_child(h.dir.path(), port);
    // 8 autocommit clients: each inserts its own rows and increments them,
    // counting what the server acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8u32 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let client = crate::wire::connect(port, "served").await;
            let mut acked: HashMap<String, i64> = HashMap::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let name = format!("c{c}_{}", i % 20);
                let result = if i < 20 {
                    client.execute("INSERT INTO counter (name, v) VALUES ($1, 0)", &[&name]).await
                } else {
                    client.execute("UPDATE counter SET v = v + 1 WHERE name = $1", &[&name]).await
                };
                match result {
                    Ok(1) if i < 20 => {
                        acked.insert(name, 0);
                    }
                    Ok(1) => *acked.get_mut(&name).unwrap() += 1,
                    Ok(n) => panic!("{name}: {n} rows"),
                    // The server died under this statement: it is in doubt.
                    Err(_) => return (acked, Some(name)),
                }
                i += 1;
            }
            (acked, None)
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.kill().expect("SIGKILL the server");
    server.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut acked = HashMap::new();
    let mut in_doubt = Vec::new();
    for c in clients {
        let (a, doubt) = c.await.unwrap();
        acked.extend(a);
        in_doubt.extend(doubt);
    }
    let updates: i64 = acked.values().sum();
    assert!(acked.len() == 160 && updates > 100, "the clients wrote under load: {} rows, {updates} increments", acked.len());
    // Restarted, the server answers with every acknowledged row and increment.
    let mut server = start_server_child(h.dir.path(), port);
    let client = crate::wire::connect(port, "served").await;
    let rows = client.query("SELECT name, v FROM counter", &[]).await.unwrap();
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect();
    for (name, v) in &acked {
        let got = stored.get(name).copied();
        if in_doubt.contains(name) {
            // The statement the kill cut off may or may not have happened.
            assert!(got == Some(*v) || got == Some(*v + 1), "{name}: {got:?} after {v} acknowledged increments");
        } else {
            assert_eq!(got, Some(*v), "{name} after {v} acknowledged increments");
        }
    }
    println!("served workspace killed under 8 clients: {} rows and {updates} acknowledged increments all kept", acked.len());
    server.kill().unwrap();
    server.wait().unwrap();
}
