//! SQLite's sqllogictest corpus over the wire, `hb serve` beside the Postgres
//! server on this machine: the same runner (heavenbase_tests::logictest), the
//! same files, each in a fresh workspace on our side and a fresh database on
//! Postgres'. Prints each file's pass rate on both sides and the totals.
//!
//! `logictest` runs the core (tests/sqllogictest/select1–5.test, the e2e suite
//! asserts ≥ 99% of them). `logictest DIR [FILES]` runs, in addition, the first
//! FILES (default 2) files of every folder under DIR: point it at the corpus'
//! `test/` folder for the `random/` and `index/` report (about 1 GB in all,
//! more than one run should take).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heavenbase::{Construction, Workspace};
use heavenbase_tests::logictest::{self, Outcome};

use crate::wire::{connect, pg_url, serve_on_own_runtime};

const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(corpus: Option<PathBuf>, per_folder: usize) {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sqllogictest");
    let mut files: Vec<(String, PathBuf)> =
        (1..=5).map(|i| (format!("select{i}"), core.join(format!("select{i}.test")))).collect();
    if let Some(dir) = corpus {
        files.extend(sample(&dir, &dir, per_folder));
    }
    println!("sqllogictest over the wire: hb serve (embedded) vs Postgres, {} files", files.len());
    let mut folders: BTreeMap<String, (Outcome, Outcome)> = BTreeMap::new();
    for (name, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let records = logictest::parse(&text).unwrap();
        let t = Instant::now();
        let ours = on_workspace(&records).await;
        let ours_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let theirs = on_postgres(&records).await;
        println!(
            "  {name}: ours {}/{} ({:.2}%, {:.0} s), Postgres {}/{} ({:.2}%, {:.0} s)",
            ours.passed,
            ours.total,
            ours.rate() * 100.0,
            ours_secs,
            theirs.passed,
            theirs.total,
            theirs.rate() * 100.0,
            t.elapsed().as_secs_f64()
        );
        for f in ours.failures.iter().take(5) {
            println!("    ours {name}:{}: {}", f.line, f.reason);
        }
        let folder = name.rsplit_once('/').map_or("core", |(f, _)| f).to_string();
        let sums = folders.entry(folder).or_default();
        for (sum, out) in [(&mut sums.0, &ours), (&mut sums.1, &theirs)] {
            sum.total += out.total;
            sum.passed += out.passed;
        }
    }
    for (folder, (ours, theirs)) in folders {
        println!(
            "  {folder}: ours {:.2}% of {} records, Postgres {:.2}%: ratio {:.3}",
            ours.rate() * 100.0,
            ours.total,
            theirs.rate() * 100.0,
            ours.rate() / theirs.rate().max(f64::MIN_POSITIVE)
        );
    }
}

/// The first `n` test files (by name) of every folder under `dir` that holds any.
fn sample(root: &Path, dir: &Path, n: usize) -> Vec<(String, PathBuf)> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let mut out: Vec<(String, PathBuf)> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .take(n)
        .map(|p| (p.strip_prefix(root).unwrap().display().to_string(), p.clone()))
        .collect();
    for sub in entries.iter().filter(|p| p.is_dir()) {
        out.extend(sample(root, sub, n));
    }
    out
}

async fn on_workspace(records: &[logictest::Record]) -> Outcome {
    let (_dir, home) = crate::home();
    let ws = Workspace::open_in(&home, "slt", Construction::preset("embedded")).await.unwrap();
    let port = serve_on_own_runtime(ws);
    let client = connect(&format!("host=127.0.0.1 port={port} user=postgres dbname=slt")).await;
    logictest::run(&client, records, TIMEOUT).await
}

async fn on_postgres(records: &[logictest::Record]) -> Outcome {
    let admin = connect(&pg_url()).await;
    admin.batch_execute("DROP DATABASE IF EXISTS hb_logictest").await.unwrap();
    admin.batch_execute("CREATE DATABASE hb_logictest").await.unwrap();
    let url = pg_url().rsplit_once('/').map(|(base, _)| format!("{base}/hb_logictest")).unwrap();
    let client = connect(&url).await;
    let out = logictest::run(&client, records, TIMEOUT).await;
    drop(client);
    admin.batch_execute("DROP DATABASE IF EXISTS hb_logictest WITH (FORCE)").await.unwrap();
    out
}
