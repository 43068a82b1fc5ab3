//! What the crash tests' child processes do (tests/tests/crash.rs starts them
//! through the `crash_child` program and kills them): objects whose `version`
//! lives in SQLite or Postgres and whose vector lives in Lance, written so that
//! a half-applied write shows.

use heavenbase::catalog::derive_object_id;
use heavenbase::{Construction, EntityDef, FieldDef, Home, LogicalType as T, Workspace};
use serde_json::{Value as Json, json};

const DIM: usize = 4;
/// Names the writer writes to: few enough that writes keep hitting the same objects.
const NAMES: u64 = 60;

pub fn doc() -> EntityDef {
    EntityDef::new("doc").field(FieldDef::new("version", T::Integer)).field(FieldDef::new("emb", T::Vector { dim: DIM }))
}

/// The vector every write of `version` stores: a row whose vector is not its
/// version's was written half.
pub fn vector_of(version: i64) -> Vec<f32> {
    (0..DIM).map(|d| (version as f32) + d as f32 / 10.0).collect()
}

/// A small deterministic generator (xorshift), so a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The workspace under `home` built from `backends`.
pub async fn open(home: &str, id: &str, backends: Construction) -> Workspace {
    Workspace::open_in(&Home::new(home), id, backends).await.expect("open the workspace")
}

/// Write until killed. Before each write print `HB begin <names>`, after it
/// `HB ack <version> <name>:<put|del> …`, so the parent knows what was
/// acknowledged and which objects are in doubt. Versions start after `version`.
pub async fn writer(ws: Workspace, seed: u64, mut version: i64) {
    ws.register(doc(), false).await.expect("register doc");
    let mut rng = Rng(seed);
    println!("HB ready");
    loop {
        version += 1;
        let picked: Vec<String> = {
            let n = 1 + rng.below(12);
            let mut v: Vec<String> = (0..n).map(|_| format!("n{}", rng.below(NAMES))).collect();
            v.sort();
            v.dedup();
            v
        };
        println!("HB begin {}", picked.join(" "));
        let row = |n: &String| {
            json!({"name": n, "version": version, "emb": vector_of(version)}).as_object().cloned().unwrap_or_default()
        };
        let ids: Vec<String> = picked.iter().map(|n| derive_object_id("doc", n)).collect();
        // The acknowledgement names each object with what happened to it.
        let marked = |names: &[String], mark: &str| names.iter().map(|n| format!("{n}:{mark}")).collect::<Vec<_>>();
        let ack = match rng.below(4) {
            0 | 1 => {
                ws.upsert_many("doc", picked.iter().map(row).collect()).await.expect("upsert_many");
                marked(&picked, "put")
            }
            2 => {
                ws.delete_many("doc", &ids).await.expect("delete_many");
                marked(&picked, "del")
            }
            _ => {
                // A block: the first half written, the rest deleted, one COMMIT.
                let tx = ws.begin().expect("begin");
                let half = picked.len().div_ceil(2);
                tx.upsert_many("doc", picked[..half].iter().map(row).collect()).await.expect("upsert_many in a block");
                tx.delete_many("doc", &ids[half..]).await.expect("delete_many in a block");
                tx.commit().await.expect("commit");
                let mut both = marked(&picked[..half], "put");
                both.extend(marked(&picked[half..], "del"));
                both
            }
        };
        println!("HB ack {version} {}", ack.join(" "));
    }
}

/// One write of `a` at version 2 (the parent sets a crash point that aborts
/// the process inside it); prints `HB not aborted` if it returns.
pub async fn one_write(ws: Workspace) {
    ws.upsert("doc", json!({"name": "a", "version": 2, "emb": vector_of(2)})).await.expect("upsert");
    println!("HB not aborted");
}

/// Serve the embedded workspace `served` (with a `counter` entity) on
/// 127.0.0.1:`port` until killed.
pub async fn serve(home: &str, port: u16) {
    let ws = open(home, "served", Construction::preset("embedded")).await;
    let counter = EntityDef::new("counter").field(FieldDef::new("v", T::Integer));
    ws.register(counter, false).await.expect("register counter");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("HB ready");
    heavenbase_pgwire::serve_on(listener, vec![ws], &Default::default(), std::future::pending()).await.expect("serve");
}

/// The backend map the parent passed as JSON text.
pub fn backends(json_text: &str) -> Construction {
    let v: Json = serde_json::from_str(json_text).expect("backends JSON");
    Construction::Backends(v)
}
