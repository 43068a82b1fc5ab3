//! Errors with a kind.
//!
//! Every error a workspace reports has a [`ErrorKind`] (what went wrong, as a
//! fixed set of cases), a message (what was wrong and where: the entity, the
//! field, the value, the backend) and, where it came from another library, that
//! library's error as its `source()`. Callers decide by kind, never by message:
//! the Postgres-wire endpoint sends [`ErrorKind::sqlstate`], the CLI picks its
//! exit code from [`ErrorKind::is_environment`].
//!
//! DataFusion errors are classified once, here ([`Error::from`]), by their
//! variant and by the typed errors they wrap (ours, a backend's, Arrow's, the
//! SQL parser's). Two DataFusion planning errors carry no type of their own
//! (an unknown table and an unknown function are both `Plan(String)`); they are
//! recognised by the exact message DataFusion's planner writes for them.

use std::error::Error as StdError;
use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use heavenbase_catalog::CatalogError;
use heavenbase_providers::ProviderError;

/// What went wrong, as a closed set of cases. Each has one SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No workspace by that id.
    UnknownWorkspace,
    /// No entity (table) by that name.
    UnknownEntity,
    /// The entity has no field (column) by that name.
    UnknownField,
    /// No backend, function or other named object by that name.
    UnknownObject,
    /// No function by that name.
    UnknownFunction,
    /// A name that is not allowed (an entity or backend id).
    InvalidName,
    /// A value that does not fit its field's type or constraints.
    InvalidValue,
    /// A request whose shape is wrong: a JSON query, a filter, an argument.
    InvalidArgument,
    /// An entity, field, index or backend definition that cannot be built.
    InvalidDefinition,
    /// A required field without a value.
    MissingValue,
    /// A unique index or a duplicate object_id refused a write.
    UniqueViolation,
    /// A foreign key names no row, or a deleted row is still named.
    ForeignKeyViolation,
    /// A value given for a `GENERATED ALWAYS` identity column.
    GeneratedAlways,
    /// One statement would change the same row twice (ON CONFLICT DO UPDATE).
    CardinalityViolation,
    /// The thing to create exists already with another structure.
    AlreadyExists,
    /// A column of that name exists already (ALTER TABLE … ADD, RENAME).
    DuplicateColumn,
    /// Other objects depend on the one to drop or change (a view on a table).
    DependentObjects,
    /// The object is of another kind than the statement names (DROP VIEW of a table).
    WrongObjectType,
    /// The object may not be changed (a system entity).
    ReadOnly,
    /// SQL that does not parse.
    Syntax,
    /// A `$n` parameter the statement was given no value for.
    UndefinedParameter,
    /// A statement nested or long beyond what can be planned.
    TooComplex,
    /// Division by zero while evaluating.
    DivisionByZero,
    /// A number outside its type's range.
    OutOfRange,
    /// Valid SQL or a valid request that this build does not do.
    NotSupported,
    /// A backend could not be reached.
    BackendUnavailable,
    /// A backend failed while doing its part.
    Backend,
    /// The statement was cancelled.
    Cancelled,
    /// A memory or other resource limit was reached.
    ResourcesExhausted,
    /// Reading or writing local files failed.
    Io,
    /// A backend's storage is full: nothing of the write was kept.
    DiskFull,
    /// Another open transaction is changing the same object: retry the transaction.
    SerializationFailure,
    /// Waited too long for an object another transaction is changing.
    LockNotAvailable,
    /// A statement after an error in a transaction block, before ROLLBACK.
    FailedTransaction,
    /// A statement that cannot run inside a transaction block (or BEGIN inside one).
    ActiveTransaction,
    /// ROLLBACK TO or RELEASE of a savepoint the block does not have.
    UnknownSavepoint,
    /// A change held by a transaction that has already ended.
    NoActiveTransaction,
    /// A defect: a state that should not be reachable.
    Internal,
}

impl ErrorKind {
    /// The Postgres SQLSTATE for this kind (Appendix A of the Postgres manual).
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorKind::UnknownWorkspace => "3D000",     // invalid_catalog_name
            ErrorKind::UnknownEntity => "42P01",        // undefined_table
            ErrorKind::UnknownField => "42703",         // undefined_column
            ErrorKind::UnknownObject => "42704",        // undefined_object
            ErrorKind::UnknownFunction => "42883",      // undefined_function
            ErrorKind::InvalidName => "42602",          // invalid_name
            ErrorKind::InvalidValue => "22P02",         // invalid_text_representation
            ErrorKind::InvalidArgument => "22023",      // invalid_parameter_value
            ErrorKind::InvalidDefinition => "42P16",    // invalid_table_definition
            ErrorKind::MissingValue => "23502",         // not_null_violation
            ErrorKind::UniqueViolation => "23505",      // unique_violation
            ErrorKind::ForeignKeyViolation => "23503",  // foreign_key_violation
            ErrorKind::GeneratedAlways => "428C9",      // generated_always
            ErrorKind::CardinalityViolation => "21000", // cardinality_violation
            ErrorKind::AlreadyExists => "42P07",        // duplicate_table
            ErrorKind::DuplicateColumn => "42701",      // duplicate_column
            ErrorKind::DependentObjects => "2BP01",     // dependent_objects_still_exist
            ErrorKind::WrongObjectType => "42809",      // wrong_object_type
            ErrorKind::ReadOnly => "42501",             // insufficient_privilege
            ErrorKind::Syntax => "42601",               // syntax_error
            ErrorKind::UndefinedParameter => "42P02",   // undefined_parameter
            ErrorKind::TooComplex => "54001",           // statement_too_complex
            ErrorKind::DivisionByZero => "22012",       // division_by_zero
            ErrorKind::OutOfRange => "22003",           // numeric_value_out_of_range
            ErrorKind::NotSupported => "0A000",         // feature_not_supported
            ErrorKind::BackendUnavailable => "08006",   // connection_failure
            ErrorKind::Backend => "58000",              // system_error (external to the server)
            ErrorKind::Cancelled => "57014",            // query_canceled
            ErrorKind::ResourcesExhausted => "53200",   // out_of_memory
            ErrorKind::Io => "58030",                   // io_error
            ErrorKind::DiskFull => "53100",             // disk_full
            ErrorKind::SerializationFailure => "40001", // serialization_failure
            ErrorKind::LockNotAvailable => "55P03",     // lock_not_available
            ErrorKind::FailedTransaction => "25P02",    // in_failed_sql_transaction
            ErrorKind::ActiveTransaction => "25001",    // active_sql_transaction
            ErrorKind::UnknownSavepoint => "3B001",     // invalid_savepoint_specification
            ErrorKind::NoActiveTransaction => "25P01",  // no_active_sql_transaction
            ErrorKind::Internal => "XX000",             // internal_error
        }
    }

    /// Whether the environment failed (a backend, the disk) rather than the
    /// request: the CLI exits 2 for these and 1 for bad requests.
    pub fn is_environment(self) -> bool {
        matches!(self, ErrorKind::BackendUnavailable | ErrorKind::Backend | ErrorKind::Io | ErrorKind::DiskFull)
    }
}

/// Every error a workspace reports: a kind, a message, and the error it came
/// from where there was one.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// An error of `kind` caused by `source`; the message is the caller's.
    pub fn with_source(kind: ErrorKind, message: impl Into<String>, source: impl StdError + Send + Sync + 'static) -> Self {
        Error { kind, message: message.into(), source: Some(Box::new(source)) }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The Postgres SQLSTATE of this error's kind.
    pub fn sqlstate(&self) -> &'static str {
        self.kind.sqlstate()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context: ` in front of its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    // Shorthands for the kinds written most often.

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidValue, message)
    }
    pub fn argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }
    pub fn definition(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidDefinition, message)
    }
    pub fn syntax(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Syntax, message)
    }
    pub fn not_supported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotSupported, message)
    }
    pub fn unknown_entity(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::UnknownEntity, message)
    }
    pub fn unknown_field(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::UnknownField, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Io, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        let kind = match &e {
            CatalogError::Name(_) => ErrorKind::InvalidName,
            CatalogError::Type(_) | CatalogError::Definition(_) | CatalogError::Placement(_) => ErrorKind::InvalidDefinition,
        };
        Error::with_source(kind, e.to_string(), e)
    }
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        Error::with_source(kind_of_provider(&e), e.to_string(), e)
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        // A failure wrapped as External keeps the inner text, as the user wrote
        // nothing about DataFusion; a context keeps its prefix.
        let message = match &e {
            DataFusionError::External(inner) => inner.to_string(),
            DataFusionError::Context(ctx, inner) => format!("{ctx}: {inner}"),
            other => other.to_string(),
        };
        // An error of ours carried through DataFusion comes back as itself.
        let e = match e {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => return *ours,
                Err(inner) => DataFusionError::External(inner),
            },
            other => other,
        };
        Error::with_source(kind_of(&e), message, e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::with_source(ErrorKind::Io, e.to_string(), e)
    }
}

/// The error of a statement whose planning or execution panicked: XX000,
/// naming the statement (cut as backend errors cut theirs) and the panic's
/// message.
pub fn panicked(statement: &str, panic: Box<dyn std::any::Any + Send>) -> Error {
    let statement = heavenbase_providers::sql_filter::shorten(statement);
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    Error::internal(format!("internal error while running `{statement}`: {message}"))
}

/// The kind of any error a query can fail with: the first error in its
/// chain whose type says what happened decides. The wire endpoint receives
/// DataFusion's and the SQL parser's errors boxed, and asks this.
pub fn kind_of(e: &(dyn StdError + 'static)) -> ErrorKind {
    let mut current = e;
    loop {
        if let Some(kind) = kind_of_one(current) {
            return kind;
        }
        match current.source() {
            Some(next) => current = next,
            None => return ErrorKind::Internal,
        }
    }
}

/// The kind one link of an error chain decides, or None to look at its source.
fn kind_of_one(e: &(dyn StdError + 'static)) -> Option<ErrorKind> {
    if let Some(ours) = e.downcast_ref::<Error>() {
        return Some(ours.kind);
    }
    if let Some(p) = e.downcast_ref::<ProviderError>() {
        return Some(kind_of_provider(p));
    }
    if let Some(p) = e.downcast_ref::<ParserError>() {
        return Some(match p {
            ParserError::RecursionLimitExceeded => ErrorKind::TooComplex,
            ParserError::TokenizerError(_) | ParserError::ParserError(_) => ErrorKind::Syntax,
        });
    }
    if let Some(a) = e.downcast_ref::<ArrowError>() {
        return match a {
            ArrowError::DivideByZero => Some(ErrorKind::DivisionByZero),
            ArrowError::CastError(_) | ArrowError::ParseError(_) | ArrowError::InvalidArgumentError(_) => {
                Some(ErrorKind::InvalidValue)
            }
            ArrowError::ArithmeticOverflow(_) => Some(ErrorKind::OutOfRange),
            ArrowError::NotYetImplemented(_) => Some(ErrorKind::NotSupported),
            ArrowError::MemoryError(_) => Some(ErrorKind::ResourcesExhausted),
            ArrowError::IoError(..) => Some(ErrorKind::Io),
            // External: look at what it wraps.
            ArrowError::ExternalError(_) => None,
            _ => Some(ErrorKind::Internal),
        };
    }
    if e.downcast_ref::<std::io::Error>().is_some() {
        return Some(ErrorKind::Io);
    }
    let df = e.downcast_ref::<DataFusionError>()?;
    match df {
        DataFusionError::SQL(..) => None, // the ParserError it holds decides
        DataFusionError::SchemaError(schema, _) => Some(match schema.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => ErrorKind::UnknownField,
            datafusion::common::SchemaError::AmbiguousReference { .. } => ErrorKind::UnknownField,
            // Postgres: `column "x" specified more than once` (a view's or a
            // table's column list, an INSERT's).
            datafusion::common::SchemaError::DuplicateQualifiedField { .. }
            | datafusion::common::SchemaError::DuplicateUnqualifiedField { .. } => ErrorKind::DuplicateColumn,
        }),
        DataFusionError::NotImplemented(_) => Some(ErrorKind::NotSupported),
        DataFusionError::ResourcesExhausted(_) => Some(ErrorKind::ResourcesExhausted),
        DataFusionError::Plan(message) => Some(kind_of_plan_message(message)),
        DataFusionError::Configuration(_) => Some(ErrorKind::InvalidArgument),
        DataFusionError::Execution(message) => Some(kind_of_execution_message(message)),
        DataFusionError::ExecutionJoin(_) => Some(ErrorKind::Internal),
        // DataFusion refuses `true BETWEEN '2024-01-01' AND …` as an internal
        // error while typing it; Postgres reads the text as the other side's
        // type and fails with 22P02.
        DataFusionError::Internal(m) if m.starts_with("Failed to coerce types") => Some(ErrorKind::InvalidValue),
        DataFusionError::Internal(_) => Some(ErrorKind::Internal),
        DataFusionError::IoError(_) => Some(ErrorKind::Io),
        DataFusionError::Collection(errors) => errors.first().map(|first| kind_of(first)),
        // Wrappers: what they wrap decides.
        DataFusionError::ArrowError(..)
        | DataFusionError::External(_)
        | DataFusionError::Context(..)
        | DataFusionError::Diagnostic(..)
        | DataFusionError::Shared(_) => None,
        _ => Some(ErrorKind::Internal),
    }
}

fn kind_of_provider(e: &ProviderError) -> ErrorKind {
    match e {
        ProviderError::Unique { .. } => ErrorKind::UniqueViolation,
        ProviderError::Backend { .. } => ErrorKind::Backend,
        ProviderError::Unavailable { .. } => ErrorKind::BackendUnavailable,
        ProviderError::DiskFull { .. } => ErrorKind::DiskFull,
        ProviderError::Storage { .. } => ErrorKind::Io,
        ProviderError::Config(_) => ErrorKind::InvalidDefinition,
        ProviderError::Unsupported(_) => ErrorKind::NotSupported,
    }
}

/// DataFusion's execution errors are its own failures, except a statement
/// run with a `$n` it was given no value for (the form written in
/// datafusion-expr's `Expr::Placeholder` substitution), which Postgres
/// reports as 42P02, a scalar subquery of more than one row, and field
/// access on a value without fields.
fn kind_of_execution_message(message: &str) -> ErrorKind {
    if message.starts_with("Placeholder '") && message.contains("was not provided a value") {
        ErrorKind::UndefinedParameter
    } else if message.starts_with("Scalar subquery returned more than one row") {
        // An uncorrelated scalar subquery run as its own plan (Postgres: 21000).
        ErrorKind::CardinalityViolation
    } else if message.starts_with("Cannot access field") {
        // `text_column.field`, raised while the statement is typed or
        // simplified: field notation on a type without fields (Postgres: 42809).
        ErrorKind::WrongObjectType
    } else {
        ErrorKind::Internal
    }
}

/// DataFusion's planner reports an unknown table and an unknown function as
/// plain `Plan` errors; these are the exact forms it writes
/// (datafusion-core `SessionState::resolve_table_ref` callers and
/// datafusion-sql `expr/function.rs`). Every other planning error is a
/// statement that cannot be planned as written.
fn kind_of_plan_message(message: &str) -> ErrorKind {
    if message.starts_with("table '") && message.ends_with("' not found") {
        ErrorKind::UnknownEntity
    } else if message.starts_with("Invalid function '") || message.starts_with("table function '") {
        ErrorKind::UnknownFunction
    } else if message.starts_with("Projections require unique expression names") {
        // A view's column list naming one column twice (Postgres: 42701).
        ErrorKind::DuplicateColumn
    } else {
        ErrorKind::InvalidArgument
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
