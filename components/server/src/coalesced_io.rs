//! A connection whose writes are gathered and sent to the socket once per scheduler pass.
//!
//! h2 (under tonic) flushes its connection before it queues any frame after a DATA frame of
//! 256 bytes or more, so a gRPC answer carrying a 1 KiB value costs one `writev` of its own:
//! with 64 clients reading, a store made 1.2 `writev` calls per answer and spent about a fifth
//! of its CPU in the kernel's TCP send path. [`CoalescedIo`] takes every write into a buffer
//! and answers a flush at once; a companion task, woken by the flush, writes what gathered to
//! the socket after the tasks already runnable have run. The answers of all requests handled
//! in the same pass thus leave in one system call.
//!
//! Ordering and delivery are unchanged: bytes reach the socket in the order they were
//! written, a write error is reported to the next write or flush, and shutdown writes
//! everything gathered before shutting the socket down. At most [`HIGH_WATER`] bytes wait:
//! beyond it a write waits until the companion task has drained the buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes gathered before a write waits for the buffer to drain (bytes).
pub const HIGH_WATER: usize = 256 * 1024;

/// A connection (`T`: a TCP or TLS stream) whose writes leave in batches; see the module
/// documentation. Must be created inside a tokio runtime (it spawns its writer task there).
pub struct CoalescedIo<T> {
    shared: Arc<Mutex<State<T>>>,
}

struct State<T> {
    io: T,
    /// Bytes accepted from writes and not yet written to `io`.
    out: Vec<u8>,
    /// The writer task's waker, while it waits for bytes to write.
    writer: Option<Waker>,
    /// The waker of a write waiting for room in `out`.
    blocked_write: Option<Waker>,
    /// A write error of the writer task, not yet reported.
    error: Option<io::Error>,
    /// The connection was dropped or shut down: the writer task ends.
    closed: bool,
}

impl<T> CoalescedIo<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Wraps `io` and spawns its writer task on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn new(io: T) -> Self {
        let shared = Arc::new(Mutex::new(State {
            io,
            out: Vec::new(),
            writer: None,
            blocked_write: None,
            error: None,
            closed: false,
        }));
        let task_state = shared.clone();
        tokio::spawn(std::future::poll_fn(move |cx| {
            poll_write_out(&task_state, cx)
        }));
        CoalescedIo { shared }
    }
}

impl<T> CoalescedIo<T> {
    /// Runs `f` on the wrapped connection (e.g. to read its addresses).
    pub fn with_inner<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.shared.lock().io)
    }
}

/// The writer task: writes what gathered, then waits to be woken by the next flush. Ends once
/// the connection is closed.
fn poll_write_out<T: AsyncWrite + Unpin>(
    shared: &Mutex<State<T>>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut state = shared.lock();
    if state.closed {
        // A connection dropped without a shutdown gets one attempt, without waiting, to send
        // what gathered; a peer that reads nothing cannot keep the task and its socket alive.
        if !state.out.is_empty() && state.error.is_none() {
            let _ = state.drain(cx);
        }
        return Poll::Ready(());
    }
    match state.drain(cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => {
            state.out.clear();
            state.error = Some(e);
        }
        // The socket is full; `io` wakes this task once it can take more.
        Poll::Pending => return Poll::Pending,
    }
    if let Some(w) = state.blocked_write.take() {
        w.wake();
    }
    state.writer = Some(cx.waker().clone());
    Poll::Pending
}

impl<T: AsyncWrite + Unpin> State<T> {
    /// Writes `out` to `io` until it is empty, then flushes `io`.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        while written < self.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out[written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.out.drain(..written);
                    return Poll::Pending;
                }
            }
        }
        self.out.clear();
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Wakes the writer task when bytes wait.
    fn schedule_write(&mut self) {
        if !self.out.is_empty() {
            if let Some(w) = self.writer.take() {
                w.wake();
            }
        }
    }

    fn take_error(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.shared.lock().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> CoalescedIo<T> {
    /// Takes `bufs` whole into the buffer, or waits while it holds [`HIGH_WATER`] bytes.
    fn gather(&self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let mut state = self.shared.lock();
        state.take_error()?;
        if state.out.len() >= HIGH_WATER {
            state.blocked_write = Some(cx.waker().clone());
            state.schedule_write();
            return Poll::Pending;
        }
        let mut n = 0;
        for b in bufs {
            state.out.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.gather(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.gather(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Hands the gathered bytes to the writer task and returns at once: they leave after the
    /// tasks already runnable, together with whatever those write.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.shared.lock();
        state.take_error()?;
        state.schedule_write();
        Poll::Ready(Ok(()))
    }

    /// Writes everything gathered, then shuts the connection's write side down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.shared.lock();
        state.take_error()?;
        std::task::ready!(state.drain(cx))?;
        std::task::ready!(Pin::new(&mut state.io).poll_shutdown(cx))?;
        state.closed = true;
        if let Some(w) = state.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T> Drop for CoalescedIo<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        if let Some(w) = state.writer.take() {
            w.wake();
        }
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected
    for CoalescedIo<T>
{
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.with_inner(|io| io.connect_info())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Counts the writes that reach it; reads nothing.
    struct CountingWriter {
        writes: Arc<AtomicUsize>,
        bytes: Arc<Mutex<Vec<u8>>>,
    }

    impl AsyncRead for CountingWriter {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for CountingWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.bytes.lock().extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_flushed_in_one_pass_leave_in_one_write() {
        let writes = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let mut io = CoalescedIo::new(CountingWriter {
            writes: writes.clone(),
            bytes: bytes.clone(),
        });
        let mut expected = Vec::new();
        for i in 0..10u8 {
            let answer = vec![i; 1100];
            io.write_all(&answer).await.unwrap();
            io.flush().await.unwrap();
            expected.extend_from_slice(&answer);
        }
        // Nothing was written while this task kept running.
        assert_eq!(writes.load(Ordering::SeqCst), 0);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while bytes.lock().len() < expected.len() && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(*bytes.lock(), expected);
        assert_eq!(writes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bytes_beyond_the_high_water_mark_arrive_whole_and_in_order() {
        let (server, mut client) = tcp_pair().await;
        let mut io = CoalescedIo::new(server);
        let sent: Vec<u8> = (0..4 * HIGH_WATER + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            for chunk in to_send.chunks(7_000) {
                io.write_all(chunk).await.unwrap();
                io.flush().await.unwrap();
            }
            io.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "bytes arrived out of order or changed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_sends_what_gathered_before_closing() {
        let (server, mut client) = tcp_pair().await;
        let mut io = CoalescedIo::new(server);
        io.write_all(b"last answer").await.unwrap();
        io.shutdown().await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"last answer");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bytes_written_before_a_drop_are_sent() {
        let (server, mut client) = tcp_pair().await;
        let mut io = CoalescedIo::new(server);
        io.write_all(b"last answer").await.unwrap();
        drop(io);
        let mut got = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.read_to_end(&mut got),
        )
        .await
        .expect("the dropped connection never closed")
        .unwrap();
        assert_eq!(got, b"last answer");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_pass_through() {
        let (server, mut client) = tcp_pair().await;
        let mut io = CoalescedIo::new(server);
        client.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_error_reaches_the_next_write_or_flush() {
        let (server, client) = tcp_pair().await;
        let mut io = CoalescedIo::new(server);
        drop(client);
        // Writes to a socket whose peer is gone fail once the peer's reset arrives.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut failed = false;
        while tokio::time::Instant::now() < deadline {
            let wrote = io.write_all(&[0u8; 4096]).await;
            let flushed = io.flush().await;
            if wrote.is_err() || flushed.is_err() {
                failed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(failed, "writes to a closed peer never reported an error");
    }
}
