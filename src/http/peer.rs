//! Whether the client of a request is still there. actix runs a handler to its
//! end even when its client has gone; a non-streaming answer would keep its LLM
//! call (and its cost) running for nobody. The socket of each connection is
//! noted when it opens, and a handler can race its work against the client's
//! hang-up (the SSE path is cut when a write fails instead).

use std::any::Any;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

use super::problem::AppError;

/// How often a waiting handler looks at its client's socket.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The connection's socket. Valid while a request of it is handled: the
/// connection, which owns it, outlives its handlers.
#[derive(Debug, Clone, Copy)]
pub struct PeerSocket(RawFd);

/// For `HttpServer::on_connect`: notes the socket of each TCP connection.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(PeerSocket(tcp.as_raw_fd()));
    }
}

impl PeerSocket {
    /// Whether the client has closed its side (or the connection broke). A
    /// client that only pipelines its next request is still there.
    fn has_left(self) -> bool {
        let mut polled = libc::pollfd {
            fd: self.0,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait; the descriptor is open (see the type).
        let ready = unsafe { libc::poll(&mut polled, 1, 0) };
        ready > 0 && polled.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    async fn left(self) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if self.has_left() {
                return;
            }
        }
    }
}

/// Runs `work` unless the request's client leaves first; then `work` is
/// dropped (an LLM call in it is cancelled) and the request ends as
/// [`AppError::ClientGone`], which nobody receives.
pub async fn unless_client_leaves<T>(
    request: &HttpRequest,
    work: impl Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    let Some(peer) = request.conn_data::<PeerSocket>().copied() else {
        return work.await;
    };
    tokio::select! {
        result = work => result,
        () = peer.left() => {
            tracing::info!("the client left before its answer was ready; the answer is dropped");
            Err(AppError::ClientGone)
        }
    }
}
