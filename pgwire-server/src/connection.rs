//! One client connection: pgwire's message loop (`pgwire::tokio::process_socket`),
//! with the replies to an extended-protocol batch sent together.
//!
//! pgwire flushes the socket after ParseComplete, BindComplete, RowDescription
//! and CommandComplete alike, so one `Parse/Bind/Describe/Execute/Sync` round
//! trip cost five writes and as many wake-ups of the client. Postgres writes
//! nothing until Sync (or Flush) arrives, or its send buffer fills. So does this
//! loop: while it processes Parse, Bind, Describe, Execute or Close, flushes only
//! move the output into [`HeldOutput`]; it reaches the socket at the next Sync,
//! Flush or any other message, or as soon as [`HOLD_LIMIT`] bytes are waiting
//! (a large result streams as it is produced).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::ErrorInfo;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use datafusion_postgres::pgwire::tokio::server::{MaybeTls, negotiate_tls, process_error, process_message};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// Output held back beyond this many bytes is written at once.
const HOLD_LIMIT: usize = 64 * 1024;
/// As pgwire: a client that has not finished startup by then is dropped.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A refused client has this long to send its startup message.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection's stream, holding back written bytes while `hold` is set.
pub(crate) struct HeldOutput {
    io: MaybeTls,
    held: Vec<u8>,
    /// Bytes of `held` already written to `io`.
    written: usize,
    hold: bool,
}

impl HeldOutput {
    /// Write out what is held (all of it, or until the socket pushes back).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.held.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for HeldOutput {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for HeldOutput {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.hold && this.held.is_empty() {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        if this.held.len() >= HOLD_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        if this.held.is_empty() && buf.len() >= HOLD_LIMIT {
            // A large result: Framed gathers HOLD_LIMIT bytes itself; no copy.
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.hold && this.held.len() < HOLD_LIMIT {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Messages after which the client sends more before it waits for replies.
fn expects_more(message: &PgWireFrontendMessage) -> bool {
    matches!(
        message,
        PgWireFrontendMessage::Parse(_)
            | PgWireFrontendMessage::Bind(_)
            | PgWireFrontendMessage::Describe(_)
            | PgWireFrontendMessage::Execute(_)
            | PgWireFrontendMessage::Close(_)
    )
}

/// Serve one TCP connection to the end (pgwire's `process_socket`, with held output).
pub(crate) async fn serve_connection<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        socket = negotiate_tls(tcp, tls) => socket?,
    };
    // None: a direct TLS handshake without a certificate configured.
    let Some(socket) = negotiated else { return Ok(()) };
    let old = socket.into_parts();
    let mut parts = FramedParts::new(HeldOutput { io: old.io, held: Vec::new(), written: 0, hold: false }, old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    socket.set_backpressure_boundary(HOLD_LIMIT);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let starting =
            matches!(socket.state(), PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress);
        // Idle between statements (everything sent, the client's turn):
        // the session's idle timeouts apply.
        let idle_limit = if starting || socket.get_ref().hold { None } else { crate::limits::idle_limit(&socket) };
        let message = if starting {
            tokio::select! {
                _ = &mut startup_timeout => None,
                m = next_message(&mut socket) => m,
            }
        } else if let Some(idle) = idle_limit {
            match tokio::time::timeout(idle.after, next_message(&mut socket)).await {
                Ok(m) => m,
                Err(_) => {
                    // Postgres' words; the block (if any) is rolled back when
                    // the session is dropped with the connection.
                    let error = ErrorInfo::new("FATAL".into(), idle.code.into(), idle.message.into());
                    let _ = futures::SinkExt::send(&mut socket, PgWireBackendMessage::ErrorResponse(error.into())).await;
                    break;
                }
            }
        } else {
            next_message(&mut socket).await
        };
        let message = match message {
            Some(Ok(Ok(message))) => message,
            Some(Err(Malformed)) => {
                let error = ErrorInfo::new("FATAL".into(), "08P01".into(), MALFORMED.into());
                let _ = futures::SinkExt::send(&mut socket, PgWireBackendMessage::ErrorResponse(error.into())).await;
                break;
            }
            _ => break,
        };
        // Terminate: close at once (some clients wait for the socket to drop).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let in_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let hold = expects_more(&message);
        socket.get_mut().hold = hold;
        let result = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = result {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, in_extended).await?;
        }
        // Whatever was held goes out with the reply to anything else, and at
        // once when the client now waits to send COPY data.
        if !hold || matches!(socket.state(), PgWireConnectionState::CopyInProgress(_)) {
            socket.get_mut().hold = false;
            futures::SinkExt::flush(&mut socket).await.map_err(|e| io::Error::other(e.to_string()))?;
        }
    }
    Ok(())
}

/// A frontend message whose contents overrun its declared length.
struct Malformed;

const MALFORMED: &str = "invalid frontend message: its contents do not match its length";

/// The next message from the client. pgwire's decoders read a message's
/// fields by the counts and lengths it declares and panic when those overrun
/// the message (a Parse announcing more parameter types than it holds, found
/// by fuzzing); such a message is answered as Postgres answers a malformed
/// one (FATAL 08P01) and the connection closed, instead of the connection's
/// task dying without a word.
async fn next_message<S: futures::Stream + Unpin>(socket: &mut S) -> Option<Result<S::Item, Malformed>> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(socket.next()).catch_unwind().await {
        Ok(item) => item.map(Ok),
        Err(_) => Some(Err(Malformed)),
    }
}

/// Answer a connection the server cannot take with a FATAL error (`code`,
/// `message`) after its startup message, as Postgres does, so the client
/// reports why. A cancel request is still carried out: it always comes on a
/// connection of its own, and is most needed when the server is full.
pub(crate) async fn refuse<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
    code: &str,
    message: &str,
) -> io::Result<()> {
    let Ok(negotiated) = tokio::time::timeout(REFUSAL_TIMEOUT, negotiate_tls::<()>(tcp, tls)).await else { return Ok(()) };
    let Some(mut socket) = negotiated? else { return Ok(()) };
    match tokio::time::timeout(REFUSAL_TIMEOUT, next_message(&mut socket)).await {
        Ok(Some(Ok(Ok(PgWireFrontendMessage::CancelRequest(cancel))))) => {
            handlers.cancel_handler().on_cancel_request(cancel).await;
        }
        Ok(Some(Ok(Ok(_)))) => {
            let error = ErrorInfo::new("FATAL".into(), code.into(), message.into());
            futures::SinkExt::send(&mut socket, PgWireBackendMessage::ErrorResponse(error.into()))
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        _ => {}
    }
    Ok(())
}
