//! Nearest-neighbour search:
//! - near top-10 over 100k × 128 vectors in Lance with its IVF_HNSW_SQ index,
//!   beside exact brute force over the same vectors in the same run: recall@10
//!   and queries/s (goal: recall ≥ 0.95 at ≥ 10× the brute-force rate);
//! - near over 10k × 64 (the Python reference takes ~880 ms a query there), on
//!   the `debug` preset (in-memory, exact) and on Lance below its index threshold.

use std::collections::HashSet;
use std::time::Instant;

use datafusion::arrow::array::{Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use heavenbase::providers::vector::{Metric, NearRequest, exact_nearest};
use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Near, Row, Workspace};
use serde_json::json;
use std::sync::Arc;

use crate::home;

/// xorshift64*: deterministic vectors without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next()).collect()
    }
}

async fn load(ws: &Workspace, vectors: &[Vec<f32>], dim: usize) {
    ws.register(EntityDef::new("item").field(FieldDef::new("emb", T::Vector { dim })), false).await.unwrap();
    for (c, chunk) in vectors.chunks(25_000).enumerate() {
        let rows: Vec<Row> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"name": format!("i{}", c * 25_000 + i), "emb": v}).as_object().unwrap().clone())
            .collect();
        ws.upsert_many("item", rows).await.unwrap();
    }
}

fn as_batch(ids: &[String], vectors: &[Vec<f32>], dim: usize) -> RecordBatch {
    let values = Float32Array::from(vectors.iter().flatten().copied().collect::<Vec<_>>());
    let list = FixedSizeListArray::new(Arc::new(Field::new("item", DataType::Float32, true)), dim as i32, Arc::new(values), None);
    let schema =
        Schema::new(vec![Field::new("object_id", DataType::Utf8, false), Field::new("emb", list.data_type().clone(), true)]);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(ids.to_vec())), Arc::new(list)]).unwrap()
}

/// Recall and speed of the index on three data sets: clustered vectors (1,000
/// Gaussian-like clusters, queries drawn from the same clusters), anisotropic
/// vectors (a 16-dimensional Gaussian projected at random into 128: low
/// intrinsic dimension, as real embeddings have), and uniform random vectors
/// (no structure at all: every point is nearly equidistant, the worst case for
/// any partitioned index). Real embeddings sit between the first two and the last.
pub async fn ann() {
    let (n, dim, probes) = (100_000, 128, 200);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let centers: Vec<Vec<f32>> = (0..1_000).map(|_| rng.vector(dim)).collect();
    let clustered = |rng: &mut Rng, count: usize| -> Vec<Vec<f32>> {
        (0..count)
            .map(|i| {
                let c = &centers[(i * 7919 + (rng.next().to_bits() as usize)) % centers.len()];
                c.iter().map(|x| x + 0.25 * rng.next()).collect()
            })
            .collect()
    };
    let vectors = clustered(&mut rng, n);
    let queries = clustered(&mut rng, probes);
    ann_on("clustered", &vectors, &queries, dim).await;
    let projection: Vec<Vec<f32>> = (0..dim).map(|_| rng.vector(16)).collect();
    let anisotropic = |rng: &mut Rng, count: usize| -> Vec<Vec<f32>> {
        (0..count)
            .map(|_| {
                // Near-Gaussian coordinates (a sum of three uniforms), projected.
                let z: Vec<f32> = (0..16).map(|_| rng.next() + rng.next() + rng.next()).collect();
                projection.iter().map(|row| row.iter().zip(&z).map(|(a, b)| a * b).sum()).collect()
            })
            .collect()
    };
    let vectors = anisotropic(&mut rng, n);
    let queries = anisotropic(&mut rng, probes);
    ann_on("anisotropic", &vectors, &queries, dim).await;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.vector(dim)).collect();
    let queries: Vec<Vec<f32>> = (0..probes).map(|_| rng.vector(dim)).collect();
    ann_on("uniform", &vectors, &queries, dim).await;
}

async fn ann_on(data: &str, vectors: &[Vec<f32>], queries: &[Vec<f32>], dim: usize) {
    let (n, probes) = (vectors.len(), queries.len());
    let (_dir, home) = home();
    let backends = json!({
        "main": {"type": "sqlite", "database": ":memory:"},
        "vec": {"type": "lance", "uri": "file://{ws_folder}/lance"},
    });
    let ws = Workspace::open_in(&home, "bench-ann", Construction::Backends(backends)).await.unwrap();
    let t = Instant::now();
    load(&ws, vectors, dim).await;
    println!("ann ({data}): loaded {n} x {dim} vectors into Lance and built the index in {:.1} s", t.elapsed().as_secs_f64());

    let ids: Vec<String> = (0..n).map(|i| heavenbase::catalog::derive_object_id("item", &format!("i{i}"))).collect();
    let batch = as_batch(&ids, vectors, dim);
    let t = Instant::now();
    let exact: Vec<HashSet<String>> = queries
        .iter()
        .map(|q| {
            let r =
                NearRequest { column: "emb".into(), vector: q.clone(), k: 10, metric: Metric::Cosine, ids: None, nprobes: None };
            exact_nearest(std::slice::from_ref(&batch), &r).into_iter().map(|(id, _)| id).collect()
        })
        .collect();
    let brute_qps = probes as f64 / t.elapsed().as_secs_f64();

    // The first search after a write loads the index and the vectors; queries/s
    // is the steady state after it.
    let t = Instant::now();
    ws.near("item", &Near::new("emb", queries[0].clone(), Some(10), None).unwrap(), None).await.unwrap();
    println!(
        "ann ({data}): first search after loading (index partitions and vectors into memory) {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let run = |nprobes: Option<usize>| {
        let ws = ws.clone();
        let (queries, exact) = (queries.to_vec(), exact.clone());
        async move {
            let t = Instant::now();
            let mut found = 0usize;
            for (q, truth) in queries.iter().zip(&exact) {
                let mut near = Near::new("emb", q.clone(), Some(10), None).unwrap();
                if let Some(p) = nprobes {
                    near = near.nprobes(p).unwrap();
                }
                let hits = ws.near("item", &near, None).await.unwrap();
                found += hits.iter().filter(|(id, _)| truth.contains(id)).count();
            }
            (queries.len() as f64 / t.elapsed().as_secs_f64(), found as f64 / (queries.len() * 10) as f64)
        }
    };
    let (ann_qps, recall) = run(None).await;
    println!(
        "ann ({data}) near top-10 on {n} x {dim}: brute force {brute_qps:.0} q/s, Lance IVF_HNSW_SQ {ann_qps:.0} q/s ({:.1}x), \
         recall@10 {recall:.3} (goal: recall >= 0.95 at >= 10x clustered, >= 4x uniform)",
        ann_qps / brute_qps
    );
    // The knob: recall against speed as more of the index's partitions are probed.
    let partitions = ((n as f64).sqrt() as usize / 4).clamp(1, 256);
    let mut curve = Vec::new();
    for nprobes in [1, 2, 4, 8, 16, 32, partitions] {
        let (qps, recall) = run(Some(nprobes)).await;
        curve.push(format!("{nprobes}: {recall:.3} at {:.1}x", qps / brute_qps));
    }
    println!("ann ({data}) nprobes of {partitions} -> recall@10 at speed vs brute force: {}", curve.join(", "));
}

pub async fn small() {
    let (n, dim, probes) = (10_000, 64, 50);
    let mut rng = Rng(42);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.vector(dim)).collect();
    for preset in ["debug", "embedded"] {
        let (_dir, home) = home();
        let ws = Workspace::open_in(&home, "bench-near", Construction::preset(preset)).await.unwrap();
        load(&ws, &vectors, dim).await;
        let t = Instant::now();
        for p in 0..probes {
            let q = &vectors[(p * 193) % n];
            let rows = ws.query("item").unwrap().near("emb", q.clone(), Some(10), None).unwrap().rows().await.unwrap();
            assert_eq!(rows.len(), 10);
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / probes as f64;
        println!(
            "near top-10 on {n} x {dim} ({preset}, exact, full rows through the builder): {per:.2} ms a query; reference ~880 ms ({:.0}x)",
            880.0 / per
        );
    }
}
