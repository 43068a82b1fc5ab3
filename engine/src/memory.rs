//! Memory limits for statements: one pool for everything a server runs, and a
//! budget per statement inside it.
//!
//! DataFusion's operators reserve the memory they hold (hash tables, sort
//! buffers, gathered batches) from the runtime's `MemoryPool`; an operator that
//! can spill (sort, hash aggregate, sort-merge join) writes to the temp folder
//! when a reservation is refused, one that cannot fails the statement. The
//! server's pool ([`MemoryLimits::server_pool`], a `FairSpillPool`) bounds them
//! all together; [`QueryPool`] gives each statement its own limit on top, so one
//! statement cannot take what the others need. A refused reservation is
//! DataFusion's `ResourcesExhausted`, which the workspace's errors report as
//! 53200 (`out_of_memory`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// How much memory statements may hold. `None` is no limit.
///
/// Clones share one pool ([`MemoryLimits::server_pool`]): give the same limits
/// to every door of a process (the wire's `ServeOptions`, and
/// [`crate::Workspace::limit_memory`] for `ws.sql`, MCP and Flight SQL) and
/// `total` bounds them all together.
#[derive(Debug, Clone, Default)]
pub struct MemoryLimits {
    /// Every statement together.
    pub total: Option<usize>,
    /// Each statement alone.
    pub per_query: Option<usize>,
    /// Where operators spill when a limit is reached (the OS temp folder if None).
    pub spill_dir: Option<PathBuf>,
    /// Made on first use, shared by clones.
    pub pool: Arc<OnceLock<Arc<dyn MemoryPool>>>,
}

impl MemoryLimits {
    pub fn new(total: Option<usize>, per_query: Option<usize>) -> Self {
        MemoryLimits { total, per_query, ..Default::default() }
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.total.is_some() || self.per_query.is_some()
    }

    /// The pool every statement draws from: fair shares for operators that
    /// can spill, the rest first come first served, within `total`.
    pub fn server_pool(&self) -> Arc<dyn MemoryPool> {
        self.pool
            .get_or_init(|| match self.total {
                Some(total) => Arc::new(FairSpillPool::new(total)),
                None => Arc::new(UnboundedMemoryPool::default()),
            })
            .clone()
    }

    /// `base` with the server pool and (when a limit is set, so spills can
    /// happen) the spill folder.
    pub fn runtime(&self, base: &RuntimeEnv, pool: Arc<dyn MemoryPool>) -> DfResult<Arc<RuntimeEnv>> {
        let mut builder = RuntimeEnvBuilder::from_runtime_env(base).with_memory_pool(pool);
        if let Some(dir) = self.spill_dir.as_ref().filter(|_| self.is_limited()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DataFusionError::Execution(format!("spill folder {}: {e}", dir.display())))?;
            builder = builder.with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![dir.clone()])),
            );
        }
        Ok(Arc::new(builder.build()?))
    }

    /// `runtime` as one statement sees it: its reservations also count against
    /// `per_query` (the runtime itself when there is no per-statement limit).
    pub fn for_statement(&self, runtime: &Arc<RuntimeEnv>) -> Arc<RuntimeEnv> {
        match self.per_query {
            Some(limit) => {
                let pool = Arc::new(QueryPool::new(runtime.memory_pool.clone(), limit));
                Arc::new(RuntimeEnv { memory_pool: pool, ..RuntimeEnv::clone(runtime) })
            }
            None => runtime.clone(),
        }
    }
}

/// One statement's budget inside a shared pool: a reservation must fit both
/// the statement's `limit` and the shared pool.
///
/// Inside the statement the limit is shared as DataFusion's `FairSpillPool`
/// shares it: each operator that can spill may hold its fraction of what the
/// others cannot give back, the rest take what is left. First come, first
/// served, the operator that fills the limit first (an aggregate's hash table)
/// leaves nothing for the one that must spill next, or for its own spill
/// (a hash aggregate sorts what it spills, in memory it must reserve), and the
/// statement fails with 53200 where it could have spilled.
///
/// Operators reserve three quarters of the limit ([`RESERVABLE`]): a hash
/// aggregate that spills holds the state it emits outside its reservation
/// while it sorts a reserved copy of it, and batches read back from spill
/// files are not reserved at all, so what a spilling statement holds runs past
/// what it reserved (a 4 GiB grouping under 512 MB peaked at 1.39× the limit
/// with all of it reservable; see `benchmarks memory`).
#[derive(Debug)]
pub struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    own: FairSpillPool,
    limit: usize,
}

/// The part of a statement's limit its operators may reserve (see [`QueryPool`]).
pub const RESERVABLE: f64 = 0.75;

impl QueryPool {
    pub fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> Self {
        QueryPool { shared, own: FairSpillPool::new((limit as f64 * RESERVABLE) as usize), limit }
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryPool(limit={}, used={}) in {}", self.limit, self.own.reserved(), self.shared)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "QueryPool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.own.register(consumer);
        self.shared.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.own.unregister(consumer);
        self.shared.unregister(consumer)
    }

    /// Growth that may not fail (DataFusion uses it for memory already held):
    /// counted, never refused.
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.shared.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.shared.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        if self.own.try_grow(reservation, additional).is_err() {
            let consumer = reservation.consumer();
            let whose = if consumer.can_spill() { "its share of " } else { "" };
            return Err(DataFusionError::ResourcesExhausted(format!(
                "out of memory: {} asked {} more than {whose}the statement's limit of {} gives it ({} held by the statement)",
                consumer.name(),
                format_bytes(additional),
                format_bytes(self.limit),
                format_bytes(self.own.reserved()),
            )));
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.own.shrink(reservation, additional);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// `2GB`, `512MB`, `64kB`, `1048576` (bytes), as Postgres writes memory
/// settings (units of 1024); also `MiB`/`GiB` spellings.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("'{text}' is not a size (as 512MB or 2GB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" | "kib" => 1024.0,
        "mb" | "m" | "mib" => 1024.0 * 1024.0,
        "gb" | "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("'{text}': unknown unit '{other}' (use B, kB, MB, GB or TB)")),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(format!("'{text}' is not a size a limit can have"));
    }
    Ok(bytes as usize)
}

/// Bytes in the largest unit that keeps them whole-ish: `64 MiB`, `1.5 GiB`.
pub fn format_bytes(n: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 { format!("{value:.0} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_postgres_writes_them() {
        assert_eq!(parse_bytes("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("64kB").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("0MB").is_err());
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(100), "100 B");
    }

    #[test]
    fn a_statement_is_held_to_its_own_limit_and_the_shared_pool() {
        let shared: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(1000));
        // 800 each, of which 600 reservable.
        let a: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 800));
        let b: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 800));
        let ra = MemoryConsumer::new("a").register(&a);
        ra.try_grow(500).unwrap();
        // Over a's own limit.
        let e = ra.try_grow(200).unwrap_err();
        assert!(matches!(e, DataFusionError::ResourcesExhausted(_)), "{e}");
        assert!(e.to_string().contains("limit of 800 B"), "{e}");
        assert_eq!(a.reserved(), 500);
        // Within b's limit, over what the shared pool has left: refused, and b holds nothing.
        let rb = MemoryConsumer::new("b").register(&b);
        assert!(rb.try_grow(600).is_err());
        assert_eq!((b.reserved(), shared.reserved()), (0, 500));
        rb.try_grow(400).unwrap();
        assert_eq!(shared.reserved(), 900);
        // Freed memory goes back to both.
        drop(ra);
        assert_eq!((a.reserved(), shared.reserved()), (0, 400));
        drop(rb);
        assert_eq!(shared.reserved(), 0);
    }

    #[test]
    fn operators_that_can_spill_share_the_statements_limit_fairly() {
        let shared: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        // 1000 reservable.
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 4000 / 3 + 1));
        let aggregate = MemoryConsumer::new("aggregate").with_can_spill(true).register(&pool);
        let sort = MemoryConsumer::new("sort").with_can_spill(true).register(&pool);
        aggregate.try_grow(500).unwrap();
        // Past its half: refused (so it spills), though the statement has room.
        let e = aggregate.try_grow(1).unwrap_err();
        assert!(e.to_string().contains("its share of the statement's limit of 1.3 KiB"), "{e}");
        // The other one still has its half.
        sort.try_grow(500).unwrap();
        assert_eq!((pool.reserved(), shared.reserved()), (1000, 1000));
        // What one gives back (after spilling), it can take again.
        aggregate.shrink(500);
        aggregate.try_grow(400).unwrap();
        assert_eq!(pool.reserved(), 900);
        // One that cannot spill takes what is left, no more.
        let gather = MemoryConsumer::new("gather").register(&pool);
        gather.try_grow(100).unwrap();
        assert!(gather.try_grow(1).is_err());
    }
}
