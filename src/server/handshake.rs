//! Connections must introduce themselves promptly. A plaintext client has the handshake timeout
//! to send the HTTP/2 connection preface, a TLS client to send what starts its TLS handshake
//! (`ServerTlsConfig::timeout` bounds the rest of it); otherwise the connection is closed, so
//! silent connections cannot pile up until their maximum age.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tonic::transport::server::Connected;

/// The length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`), the
/// first bytes of every plaintext gRPC connection; a TLS ClientHello is longer.
const PREFACE_BYTES: usize = 24;

/// A connection that fails its next read once its deadline passes before the peer sent
/// [`PREFACE_BYTES`]; reads and writes pass through unchanged.
pub struct Handshaking<IO> {
    /// The connection itself.
    io: IO,
    /// Disarmed (None) once the preface is in.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes received so far, counted up to the preface.
    received: usize,
}

impl<IO> Handshaking<IO> {
    /// Starts the clock: call it as the connection is accepted.
    pub fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            received: 0,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Handshaking<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            tracing::debug!("connection closed: no handshake within the handshake timeout");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no handshake within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            this.received += buf.filled().len() - before;
            if this.received >= PREFACE_BYTES {
                this.deadline = None;
            }
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Handshaking<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The wrapped connection's own information (`TcpConnectInfo`, and under TLS the client's
/// certificates), so authentication sees the connection as before.
impl<IO: Connected> Connected for Handshaking<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_silent_peer_fails_the_read_at_the_deadline() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Handshaking::new(server, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test]
    async fn a_peer_that_sent_the_preface_has_no_deadline_any_more() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = Handshaking::new(server, Duration::from_millis(50));
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 24];
        server.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.write_all(b"more").await.unwrap();
        let mut more = [0u8; 4];
        server.read_exact(&mut more).await.unwrap();
        assert_eq!(&more, b"more");
    }
}
