//! The BMC's listener. Anyone who reaches the port can open connections before any credential
//! is checked, so every connection is bounded in time and number: a TLS handshake, a request
//! head and a request body each have a deadline, a connection idle between requests is
//! closed, and at most `max_connections` are open at once. When the table is full, the oldest
//! connection that has not yet sent a complete request head gives way to the newcomer, so
//! clients that connect and say nothing (or say it slowly) cannot keep out the ones that ask.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use super::error::ApiError;

/// Time for a whole request body.
pub const BODY_TIME: Duration = Duration::from_secs(10);

/// The address a request came from, set on every request the listener serves.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Bounds on every connection.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time for the TLS handshake.
    pub handshake: Duration,
    /// Time for a request head, from its first byte.
    pub head: Duration,
    /// Time a connection may stay silent between requests (or before its first).
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            handshake: Duration::from_secs(10),
            head: Duration::from_secs(10),
            idle: Duration::from_secs(30),
        }
    }
}

/// Open connections, oldest first, with whether each has sent a complete request head.
#[derive(Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, (Arc<AtomicBool>, tokio::task::AbortHandle)>,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` turns true, then lets
/// open requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> io::Result<()> {
    let table = Arc::new(Mutex::new(Table::default()));
    let mut tasks = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(e) => {
                    tracing::warn!(error = %e, "Redfish BMC: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        while tasks.try_join_next().is_some() {}
        let served = Arc::new(AtomicBool::new(false));
        let conn = connection(
            stream,
            tls.clone(),
            (app.clone(), limits.clone()),
            (served.clone(), ClientAddr(peer.ip().to_canonical())),
            stop.clone(),
        );
        // The table stays locked until the new connection is in it: a connection that ends at
        // once removes itself only after it was inserted, never before.
        let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
        if t.open.len() >= limits.max_connections {
            let oldest_silent = t
                .open
                .iter()
                .find(|(_, (s, _))| !s.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            match oldest_silent.and_then(|id| t.open.remove(&id)) {
                Some((_, abort)) => abort.abort(),
                None => {
                    tracing::warn!(%peer, "Redfish BMC: connection table full; refused");
                    continue;
                }
            }
        }
        t.next += 1;
        let id = t.next;
        let table_done = table.clone();
        let abort = tasks.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "Redfish BMC: connection closed");
            }
            table_done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
        t.open.insert(id, (served, abort));
    }
    drop(listener);
    // Connections waiting for a request close now; requests in flight may finish.
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.shutdown().await;
    Ok(())
}

/// Reads the whole request body within [`BODY_TIME`] (and [`super::BODY_LIMIT`]) before the
/// handler runs, so a client that sends its body slowly cannot hold a connection open.
pub async fn body_in_time(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_TIME, axum::body::to_bytes(body, super::BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "GeneralError",
            format!("The request body could not be read: {e}."),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "GeneralError",
            "The request body did not arrive in time.",
        )
        .into_response(),
    }
}

/// One connection: handshake, then HTTP/1.1 requests until the client leaves or a bound is hit.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    (app, limits): (Router, Limits),
    (served, client): (Arc<AtomicBool>, ClientAddr),
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counted = in_flight.clone();
    // Marks the connection as served and counts the request in flight while it is answered.
    let service = app.layer(axum::middleware::from_fn(
        move |mut req: Request, next: Next| {
            served.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(client);
            let guard = InFlight::enter(counted.clone());
            async move {
                let response = next.run(req).await;
                drop(guard);
                response
            }
        },
    ));
    let svc = TowerToHyperService::new(service);
    match tls {
        Some(acceptor) => {
            let stream = tokio::time::timeout(limits.handshake, acceptor.accept(stream))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))??;
            let io = TokioIo::new(Idle::new(stream, limits.idle, in_flight));
            drive(io, svc, &limits, stop).await
        }
        None => {
            let io = TokioIo::new(Idle::new(stream, limits.idle, in_flight));
            drive(io, svc, &limits, stop).await
        }
    }
}

/// Serves HTTP/1.1 on `io` until the client leaves, a bound is hit or `stop` turns true (then
/// the request in flight, if any, is answered first).
async fn drive<I, S>(
    io: I,
    svc: S,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => return done.map_err(io::Error::other),
        () = stopped(&mut stop) => {}
    }
    // A connection accepted an instant before the stop may have its request on the way;
    // closing it as idle would fail that request. Serve for a moment before closing.
    tokio::select! {
        done = conn.as_mut() => return done.map_err(io::Error::other),
        () = tokio::time::sleep(LAST_REQUEST_GRACE) => conn.as_mut().graceful_shutdown(),
    }
    conn.await.map_err(io::Error::other)
}

/// How long a connection is still read after the stop before an idle one is closed.
const LAST_REQUEST_GRACE: Duration = Duration::from_millis(200);

/// Returns once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Counts a request in flight on its connection while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream whose reads fail once nothing has arrived for `limit` while no request is in
/// flight (a request being answered, e.g. a media download, may take longer).
struct Idle<S> {
    inner: S,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    in_flight: Arc<AtomicUsize>,
}

impl<S> Idle<S> {
    fn new(inner: S, limit: Duration, in_flight: Arc<AtomicUsize>) -> Idle<S> {
        Idle {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            in_flight,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.limit;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.in_flight.load(Ordering::Relaxed) > 0 {
                    let next = Instant::now() + self.limit;
                    self.deadline.as_mut().reset(next);
                    return Poll::Pending;
                }
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "idle connection",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
