//! Nearest-neighbour search: the request every backend answers, the metrics, and
//! exact search over Arrow batches (the in-memory backend, and any backend
//! without a vector index of its own).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float32Type;

use crate::{ProviderError, Result};

/// Default and largest `top_k` (docs/reference.md §7.1).
pub const DEFAULT_TOP_K: usize = 50;
pub const MAX_TOP_K: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    L2,
    Dot,
}

impl Metric {
    pub fn parse(name: &str) -> Result<Metric> {
        match name.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(Metric::Cosine),
            "l2" | "euclidean" => Ok(Metric::L2),
            "dot" | "ip" | "inner_product" => Ok(Metric::Dot),
            other => Err(ProviderError::Config(format!("Unknown metric '{other}' (use cosine, l2 or dot)"))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::Dot => "dot",
        }
    }

    /// The distance (smaller is nearer) in the convention Lance uses: cosine
    /// 1 − cos, l2 the squared Euclidean distance, dot 1 − x·y.
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine => cosine_distance(lanes(a, b, mul), lanes(a, a, mul), lanes(b, b, mul)),
            Metric::L2 => lanes(a, b, |x, y| (x - y) * (x - y)),
            Metric::Dot => 1.0 - lanes(a, b, |x, y| x * y),
        }
    }

    /// The score users see, larger is nearer: cosine similarity, dot product, or
    /// the negated Euclidean distance.
    pub fn score(&self, distance: f32) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => 1.0 - distance,
            Metric::L2 => -distance.max(0.0).sqrt(),
        }
    }
}

fn mul(x: f32, y: f32) -> f32 {
    x * y
}

/// 1 − cos from a·b, |a|² and |b|²; a zero vector is at distance 1 from all.
fn cosine_distance(dot: f32, norm_a: f32, norm_b: f32) -> f32 {
    if norm_a == 0.0 || norm_b == 0.0 { 1.0 } else { 1.0 - dot / (norm_a.sqrt() * norm_b.sqrt()) }
}

/// Σ f(a[i], b[i]) over eight independent partial sums, which the compiler
/// keeps in SIMD registers (one running sum is a serial chain it may not
/// reorder): several times faster on 128-dimensional vectors.
#[inline]
fn lanes(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += f(x[i], y[i]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| f(*x, *y)).sum();
    acc.iter().sum::<f32>() + tail
}

/// A nearest-neighbour request on one vector column of one field group.
#[derive(Debug, Clone)]
pub struct NearRequest {
    pub column: String,
    pub vector: Vec<f32>,
    pub k: usize,
    pub metric: Metric,
    /// Only these object_ids are candidates (a filter applied before the search).
    pub ids: Option<Arc<Vec<String>>>,
    /// Index partitions an approximate search probes (more: higher recall,
    /// slower); None: the backend's default. Exact searches ignore it.
    pub nprobes: Option<usize>,
}

/// The most partitions a query may ask to probe (an index has at most 256).
pub const MAX_NPROBES: usize = 4096;

/// One hit: object_id and distance (smaller is nearer).
pub type Hit = (String, f32);

/// Exact search over batches holding `object_id` first and the vector column
/// second. Rows with a NULL vector are not candidates.
pub fn exact_nearest(batches: &[RecordBatch], request: &NearRequest) -> Vec<Hit> {
    let allowed: Option<HashSet<&str>> = request.ids.as_ref().map(|ids| ids.iter().map(String::as_str).collect());
    let mut hits: Vec<(f32, &str)> = Vec::new();
    let query = request.vector.as_slice();
    let cosine = CosineFrom::new(query);
    let distance = |v: &[f32]| match request.metric {
        Metric::Cosine => cosine.distance(v),
        other => other.distance(query, v),
    };
    for b in batches {
        let ids = b.column(0).as_string::<i32>();
        let vectors = b.column(1).as_fixed_size_list();
        let dim = vectors.value_length() as usize;
        let values = vectors.values().as_primitive::<Float32Type>().values();
        for row in 0..b.num_rows() {
            if vectors.is_null(row) {
                continue;
            }
            let id = ids.value(row);
            if allowed.as_ref().is_some_and(|a| !a.contains(id)) {
                continue;
            }
            let start = (vectors.offset() + row) * dim;
            let v = &values[start..start + dim];
            hits.push((distance(v), id));
        }
    }
    nearest_k(hits, request.k)
}

/// Cosine distance from one query to many vectors, the query's norm computed once.
pub(crate) struct CosineFrom<'a> {
    query: &'a [f32],
    norm: f32,
}

impl<'a> CosineFrom<'a> {
    pub(crate) fn new(query: &'a [f32]) -> Self {
        CosineFrom { query, norm: lanes(query, query, mul) }
    }

    pub(crate) fn distance(&self, v: &[f32]) -> f32 {
        cosine_distance(lanes(self.query, v, mul), self.norm, lanes(v, v, mul))
    }
}

/// The `k` nearest of `hits` (distance, object_id), nearest first.
pub(crate) fn nearest_k(mut hits: Vec<(f32, &str)>, k: usize) -> Vec<Hit> {
    let k = k.min(hits.len());
    if k == 0 {
        return Vec::new();
    }
    // Partial selection, then sort the k kept: O(n + k log k). Ties break on id
    // so every backend returns the same order.
    let cmp = |a: &(f32, &str), b: &(f32, &str)| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1));
    if k < hits.len() {
        hits.select_nth_unstable_by(k - 1, cmp);
        hits.truncate(k);
    }
    hits.sort_by(cmp);
    hits.into_iter().map(|(d, id)| (id.to_string(), d)).collect()
}
