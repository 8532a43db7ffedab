//! Writes gathered until a flush, beneath HTTP/2.
//!
//! h2 hands its transport one write per DATA frame over 256 bytes (it chains
//! the payload instead of copying it), and tokio-rustls turns each write into
//! a TLS record and a `writev` at once. A certificate response (headers, the
//! chain, trailers) and a request (headers, the CSR) would each cost two
//! system calls, and on loopback a send also runs the receiver's side of TCP.
//! [`Coalesced`] copies the writes into a buffer and hands them to the
//! transport when h2 flushes, which it does once it has written every frame
//! it has ready: one TLS record and one `writev` for all of them.
//!
//! ```text
//! h2 frames ─write─► Coalesced (buffer, ≤ CAPACITY) ─flush─► TlsStream ─► TCP
//! ```

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};

/// Bytes gathered before they go out without a flush: a few responses,
/// below a TLS record's 16 KiB so that a full buffer is one record.
pub(crate) const CAPACITY: usize = 16 * 1024;

/// A transport whose writes wait for the next flush (or a full buffer).
#[derive(Debug)]
pub struct Coalesced<T> {
    inner: BufWriter<T>,
    /// Whether the last flush yielded once before writing.
    yielded: bool,
}

impl<T: AsyncWrite> Coalesced<T> {
    pub fn new(inner: T) -> Self {
        Coalesced {
            inner: BufWriter::with_capacity(CAPACITY, inner),
            yielded: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        self.inner.get_ref()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // Gathering copies anyway: a vectored write saves h2 a copy only.
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Yield once before writing: the tasks already woken (other
        // streams' responses, a request's body after its headers) run
        // first, and what they queue goes out in the same write.
        if !self.yielded && !self.inner.buffer().is_empty() {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn writes_wait_for_a_flush_and_reads_pass_through() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = Coalesced::new(near);
        io.write_all(b"frame one ").await.unwrap();
        io.write_all(b"frame two").await.unwrap();
        let mut got = [0u8; 64];
        // Nothing has gone out before the flush.
        let early = tokio::time::timeout(std::time::Duration::ZERO, far.read(&mut got)).await;
        assert!(early.is_err());
        io.flush().await.unwrap();
        let n = far.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"frame one frame two");

        // More than the buffer holds goes out without a flush.
        let big = vec![7u8; CAPACITY + 1];
        io.write_all(&big).await.unwrap();
        let mut received = vec![0u8; big.len()];
        far.read_exact(&mut received).await.unwrap();
        assert_eq!(received, big);

        far.write_all(b"reply").await.unwrap();
        let n = io.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"reply");
    }
}
