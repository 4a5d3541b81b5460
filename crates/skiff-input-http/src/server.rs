//! The HTTP/1.1 server under skiff's push receivers (`http_endpoint`, the metrics module's
//! prometheus `remote_write`): accept connections until shutdown, a TLS handshake first when
//! configured (bounded to 10 s), hyper serving each connection with a 30 s bound on reading
//! request headers, and a 5 s drain of requests in progress at shutdown. One copy, so that the
//! receivers share its bounds.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Serves `listener` until `shutdown` is cancelled, every request answered by `handle`; `what`
/// names the receiver in log lines. Returns once the requests in progress finished (5 s at
/// most after shutdown).
pub async fn serve_until<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: &CancellationToken,
    what: &str,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(receiver = what, error = %e, "accept failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        while conns.try_join_next().is_some() {}
        let (handle, tls, what) = (handle.clone(), tls.clone(), what.to_owned());
        conns.spawn(async move {
            match tls {
                None => serve(tcp, handle).await,
                Some(acc) => {
                    match tokio::time::timeout(Duration::from_secs(10), acc.accept(tcp)).await {
                        Ok(Ok(s)) => serve(s, handle).await,
                        Ok(Err(e)) => {
                            tracing::debug!(receiver = %what, peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(receiver = %what, peer = %peer, "TLS handshake timed out")
                        }
                    }
                }
            }
        });
    }
    // Requests in progress finish (they answer 503 once shutdown is seen).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

async fn serve<S, H, F>(io: S, handle: H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let fut = handle(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}
