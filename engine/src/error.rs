use heavenbase_catalog::CatalogError;
use heavenbase_providers::ProviderError;

/// Every error a workspace reports. Messages say what was wrong and where:
/// the entity, the field, the value, the backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a value, a field, a definition. Nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what exists (a workspace with another construction,
    /// an entity registered with another structure, a unique value taken).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Backend(ProviderError),
    #[error("{0}")]
    Query(String),
    #[error("{0}")]
    Io(String),
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Unique { .. } => Error::Conflict(e.to_string()),
            other => Error::Backend(other),
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        // A backend failure surfaces through DataFusion as External: keep its text.
        match e {
            datafusion::error::DataFusionError::External(inner) => Error::Query(inner.to_string()),
            datafusion::error::DataFusionError::Context(ctx, inner) => Error::Query(format!("{ctx}: {inner}")),
            other => Error::Query(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// "Did you mean 'x'?" for a misspelt name, by edit distance.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(1))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!(" Did you mean '{c}'?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = if a[i - 1] == b[j - 1] { 0 } else { 1 };
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
