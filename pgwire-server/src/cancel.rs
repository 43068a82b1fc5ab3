//! Query cancel (a CancelRequest on a second connection, as psql's Ctrl-C and
//! every driver's `cancel()` send it).
//!
//! pgwire's own handler stops a statement only while its handler is planning
//! it: pgwire races `do_query` against the cancel signal, then streams the rows
//! outside that race. DataFusion executes lazily, as the result stream is
//! polled, so most of a long query runs after the race is over. Each session
//! therefore also has a cancel signal of its own, which the result stream
//! watches between batches ([`until_cancelled`]); a CancelRequest fires both.
//! Dropping the stream stops the plan (DataFusion aborts its tasks).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;

use crate::router::Session;
use crate::{InFlight, Shared};

/// Sessions by the (pid, secret key) their clients were given at startup.
#[derive(Default)]
pub(crate) struct Sessions {
    by_key: Mutex<HashMap<(i32, Bytes), Weak<Session>>>,
}

impl Sessions {
    /// Make the client's session cancellable by its key (after authentication,
    /// when pgwire has assigned the key). Forgets sessions that have ended.
    pub fn register<C: ClientInfo + ?Sized>(&self, client: &C, session: &Arc<Session>) {
        let (pid, secret) = client.pid_and_secret_key();
        let mut by_key = self.by_key.lock();
        by_key.retain(|_, s| s.strong_count() > 0);
        by_key.insert((pid, secret.to_bytes()), Arc::downgrade(session));
    }

    fn find(&self, request: &CancelRequest) -> Option<Arc<Session>> {
        self.by_key.lock().get(&(request.pid, request.secret_key.to_bytes())).and_then(Weak::upgrade)
    }
}

/// Fires pgwire's signal (a statement still being planned) and the session's
/// own (a statement whose rows are streaming). An unknown key does nothing, as
/// in Postgres.
pub(crate) struct Cancel {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl CancelHandler for Cancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared.connections.cancel(request.pid, &request.secret_key).await;
        if let Some(session) = self.shared.sessions.find(&request) {
            session.cancel.send_modify(|generation| *generation += 1);
        }
    }
}

/// The query's batches until the session is cancelled, which ends them with
/// 57014 (query_canceled). `running` keeps the statement counted as in flight
/// (graceful shutdown waits for it) until its last row is sent.
pub(crate) fn until_cancelled(
    batches: SendableRecordBatchStream,
    session: &Session,
    running: InFlight,
) -> impl Stream<Item = PgWireResult<RecordBatch>> + Send + use<> {
    let cancelled = session.cancel.subscribe();
    futures::stream::unfold(Some((batches, cancelled, running)), |state| async move {
        let (mut batches, mut cancelled, running) = state?;
        tokio::select! {
            biased;
            Ok(()) = cancelled.changed() => Some((Err(PgWireError::QueryCanceled), None)),
            next = batches.next() => {
                let item = next?.map_err(|e| PgWireError::ApiError(Box::new(e)));
                Some((item, Some((batches, cancelled, running))))
            }
        }
    })
}
