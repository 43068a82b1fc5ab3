//! Per-session time limits, as Postgres names and answers them.
//!
//! - `statement_timeout` (datafusion-postgres' SET keeps it in the session's
//!   metadata): the router gives each statement a deadline ([`deadline`]) that
//!   covers its planning, its execution and the rows it streams afterwards;
//!   past it the statement fails with 57014.
//! - `idle_in_transaction_session_timeout` and `idle_session_timeout`
//!   ([`TimeoutSettings`] answers SET and SHOW for them): the connection loop
//!   waits that long for the client's next message ([`idle_limit`]), then
//!   closes the session with FATAL 25P03 or 57P05.
//!
//! Every session starts from the server's [`crate::Timeouts`].

use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use tokio::time::Instant;

use crate::{Timeouts, user_error};

/// Where datafusion-postgres keeps `statement_timeout` (milliseconds).
pub(crate) const STATEMENT_TIMEOUT: &str = "statement_timeout_ms";
const IDLE_IN_TRANSACTION: &str = "idle_in_transaction_session_timeout";
const IDLE_SESSION: &str = "idle_session_timeout";

/// A new session's settings: the server's timeouts, in the session's metadata.
pub(crate) fn start_session<C: ClientInfo + ?Sized>(client: &mut C, timeouts: &Timeouts) {
    let metadata = client.metadata_mut();
    for (key, value) in [
        (STATEMENT_TIMEOUT, timeouts.statement),
        (IDLE_IN_TRANSACTION, timeouts.idle_in_transaction),
        (IDLE_SESSION, timeouts.idle_session),
    ] {
        if let Some(value) = value.filter(|d| !d.is_zero()) {
            metadata.insert(key.to_string(), value.as_millis().to_string());
        }
    }
}

fn millis<C: ClientInfo + ?Sized>(client: &C, key: &str) -> Option<Duration> {
    client.metadata().get(key)?.parse::<u64>().ok().filter(|ms| *ms > 0).map(Duration::from_millis)
}

/// When the statement now starting must be done, if the session has a
/// `statement_timeout`. Transaction control runs without one: a COMMIT cut
/// off while it applies its changes would leave part of them applied until
/// the journal is replayed; Postgres, too, does not interrupt a commit.
pub(crate) fn deadline<C: ClientInfo + ?Sized>(client: &C, sql: &str) -> Option<Instant> {
    let limit = millis(client, STATEMENT_TIMEOUT)?;
    let first = sql.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("").to_ascii_lowercase();
    if matches!(first.as_str(), "commit" | "end" | "rollback" | "abort" | "release" | "prepare") {
        return None;
    }
    Some(Instant::now() + limit)
}

/// The error a statement past its deadline ends with.
pub(crate) fn timed_out() -> PgWireError {
    user_error("57014", "canceling statement due to statement timeout".into())
}

/// Runs `statement` until `deadline`.
pub(crate) async fn within<T>(
    deadline: Option<Instant>,
    statement: impl std::future::Future<Output = PgWireResult<T>>,
) -> PgWireResult<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, statement).await.unwrap_or_else(|_| Err(timed_out())),
        None => statement.await,
    }
}

/// `rows` until `deadline`, then 57014 instead of the rest (rows that are
/// ready do not let a statement run past it).
pub(crate) fn until<T: Send + 'static>(
    deadline: Option<Instant>,
    rows: impl futures::Stream<Item = PgWireResult<T>> + Send + 'static,
) -> futures::stream::BoxStream<'static, PgWireResult<T>> {
    use futures::StreamExt;
    let Some(deadline) = deadline else { return rows.boxed() };
    futures::stream::unfold(Some(rows.boxed()), move |state| async move {
        let mut rows = state?;
        if Instant::now() >= deadline {
            return Some((Err(timed_out()), None));
        }
        tokio::select! {
            biased;
            next = rows.next() => next.map(|item| (item, Some(rows))),
            _ = tokio::time::sleep_until(deadline) => Some((Err(timed_out()), None)),
        }
    })
    .boxed()
}

/// How long the connection loop waits for a client that is idle, and how it
/// closes the session then.
pub(crate) struct IdleLimit {
    pub after: Duration,
    pub code: &'static str,
    pub message: &'static str,
}

/// The idle limit of the client's session as it stands: inside a transaction
/// block (failed or not), `idle_in_transaction_session_timeout`; outside,
/// `idle_session_timeout`.
pub(crate) fn idle_limit<C: ClientInfo + ?Sized>(client: &C) -> Option<IdleLimit> {
    let session = crate::router::session(client).ok()?;
    if session.in_block() {
        millis(client, IDLE_IN_TRANSACTION).map(|after| IdleLimit {
            after,
            code: "25P03",
            message: "terminating connection due to idle-in-transaction timeout",
        })
    } else {
        millis(client, IDLE_SESSION).map(|after| IdleLimit {
            after,
            code: "57P05",
            message: "terminating connection due to idle-session timeout",
        })
    }
}

/// A Postgres time setting: a number of milliseconds, or a number with a unit
/// (`ms`, `s`, `min`, `h`, `d`), quoted or not. `0` turns the limit off.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim().trim_matches('\'').trim_matches('"').trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// How Postgres shows a time setting: its largest whole unit.
fn show_duration(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}min", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// SET / RESET / SHOW of the two idle timeouts.
pub(crate) struct TimeoutSettings;

impl TimeoutSettings {
    pub(crate) fn answer(statement: &Statement, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Set(Set::SingleAssignment { scope: None, hivevar: false, variable, values }) => {
                let name = setting(&variable.to_string())?;
                let value = values.first().map(ToString::to_string).unwrap_or_default();
                let metadata = client.metadata_mut();
                if value.eq_ignore_ascii_case("default") {
                    metadata.remove(name);
                    return Some(Ok(Response::Execution(Tag::new("SET"))));
                }
                Some(match parse_duration(&value) {
                    Some(d) => {
                        metadata.insert(name.to_string(), d.as_millis().to_string());
                        Ok(Response::Execution(Tag::new("SET")))
                    }
                    None => Err(user_error("22023", format!("invalid value for parameter \"{name}\": {value}"))),
                })
            }
            Statement::ShowVariable { variable } => {
                let [one] = variable.as_slice() else { return None };
                // statement_timeout is SET by datafusion-postgres; shown here in Postgres' form (`2s`, not `2000ms`).
                let (name, key) = match one.value.to_ascii_lowercase().as_str() {
                    "statement_timeout" => ("statement_timeout", STATEMENT_TIMEOUT),
                    other => {
                        let name = setting(other)?;
                        (name, name)
                    }
                };
                let ms = client.metadata().get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
                Some(crate::compat::setting_row(name, &show_duration(ms)))
            }
            _ => None,
        }
    }
}

fn setting(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    [IDLE_IN_TRANSACTION, IDLE_SESSION].into_iter().find(|known| *known == name)
}

#[async_trait]
impl QueryHook for TimeoutSettings {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::answer(statement, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_settings_read_and_show_as_postgres_does() {
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("'2s'"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5min"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("3 fortnights"), None);
        assert_eq!(show_duration(2_000), "2s");
        assert_eq!(show_duration(300_000), "5min");
        assert_eq!(show_duration(1_500), "1500ms");
        assert_eq!(show_duration(0), "0");
    }
}
