//! Requests framed by both `Content-Length` and `Transfer-Encoding`, found below hyper.
//!
//! Such a request is the classic smuggling vector: a proxy in front that reads the length
//! and a server that reads the chunks disagree on where the next request starts. hyper
//! prefers the chunks and drops a `Content-Length` written after `Transfer-Encoding`, so the
//! conflict cannot be seen above it. This reader follows each request's framing as the
//! bytes pass (head, then a counted or chunked body) and records which requests of the
//! connection had both; the server answers those 400 and closes, as Envoy does by default.
//! Following stops (records nothing more) if the bytes stop looking like HTTP/1.1, where
//! hyper fails the connection itself.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest request head followed; hyper refuses larger ones anyway.
const MAX_HEAD: usize = 1 << 20;

/// Which requests of one connection (numbered from 0) had both framing headers.
#[derive(Default)]
pub(crate) struct Conflicts(Mutex<BTreeSet<u64>>);

impl Conflicts {
    /// Whether request `index` had both (forgotten once asked).
    pub(crate) fn take(&self, index: u64) -> bool {
        self.0.lock().expect("not poisoned").remove(&index)
    }
}

/// Where the reader is in the byte stream.
enum State {
    /// In a request head (the bytes so far).
    Head(Vec<u8>),
    /// In a body with this many bytes left.
    Counted(u64),
    /// In a chunk-size line (the bytes so far).
    ChunkSize(Vec<u8>),
    /// In a chunk's data with this many bytes left, then its CRLF.
    ChunkData(u64),
    /// In the trailer section after the last chunk (the current line so far).
    Trailers(Vec<u8>),
    /// The stream stopped looking like HTTP/1.1.
    Lost,
}

/// A connection's read half, followed request by request.
pub(crate) struct FramingReader<S> {
    inner: S,
    state: State,
    next_request: u64,
    conflicts: Arc<Conflicts>,
}

impl<S> FramingReader<S> {
    pub(crate) fn new(inner: S) -> (Self, Arc<Conflicts>) {
        let conflicts = Arc::new(Conflicts::default());
        (Self { inner, state: State::Head(Vec::new()), next_request: 0, conflicts: conflicts.clone() }, conflicts)
    }

    fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Head(head) => {
                    if head.is_empty() {
                        // Empty lines before a request line are allowed (RFC 9112 2.2).
                        let blank = bytes.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
                        bytes = &bytes[blank..];
                        if bytes.is_empty() {
                            return;
                        }
                    }
                    let searched = head.len().saturating_sub(3);
                    head.extend_from_slice(bytes);
                    let Some(end) = head[searched..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| searched + p + 4) else {
                        if head.len() > MAX_HEAD {
                            self.state = State::Lost;
                        }
                        return;
                    };
                    let rest = head.len() - end;
                    let consumed = bytes.len() - rest;
                    let head = std::mem::take(head);
                    self.state = self.after_head(&head[..end]);
                    bytes = &bytes[consumed..];
                }
                State::Counted(left) => {
                    if skip(left, &mut bytes) {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => {
                    match take_line(line, &mut bytes, 4096) {
                        Line::Partial => return,
                        Line::TooLong => {
                            self.state = State::Lost;
                            return;
                        }
                        Line::Complete => {}
                    }
                    let text = String::from_utf8_lossy(line);
                    let size = text.split(';').next().unwrap_or("").trim();
                    self.state = match u64::from_str_radix(size, 16) {
                        Ok(0) => State::Trailers(Vec::new()),
                        // The data, then its CRLF.
                        Ok(n) => State::ChunkData(n.saturating_add(2)),
                        Err(_) => State::Lost,
                    };
                }
                State::ChunkData(left) => {
                    if skip(left, &mut bytes) {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(line) => {
                    match take_line(line, &mut bytes, MAX_HEAD) {
                        Line::Partial => return,
                        Line::TooLong => {
                            self.state = State::Lost;
                            return;
                        }
                        Line::Complete => {}
                    }
                    let blank = line.iter().all(|b| *b == b'\r');
                    self.state = if blank { State::Head(Vec::new()) } else { State::Trailers(Vec::new()) };
                }
            }
        }
    }

    /// Records the head's framing and says where its body is.
    fn after_head(&mut self, head: &[u8]) -> State {
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
            return State::Lost;
        }
        let index = self.next_request;
        self.next_request += 1;
        let mut length = None;
        let mut chunked = false;
        for h in request.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok()).or(Some(0));
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
        }
        if chunked && length.is_some() {
            self.conflicts.0.lock().expect("not poisoned").insert(index);
            // hyper answers this request and closes the connection: nothing more to follow.
            return State::Lost;
        }
        match (chunked, length) {
            (true, _) => State::ChunkSize(Vec::new()),
            (false, Some(n)) if n > 0 => State::Counted(n),
            _ => State::Head(Vec::new()),
        }
    }
}

/// Passes over up to `left` bytes of `bytes`; true once none are left.
fn skip(left: &mut u64, bytes: &mut &[u8]) -> bool {
    let n = (*left).min(bytes.len() as u64);
    *left -= n;
    *bytes = &bytes[n as usize..];
    *left == 0
}

/// How far a line has come.
enum Line {
    /// Ended by `\n` (not kept); the rest of the bytes follow it.
    Complete,
    /// All the bytes were taken and the line goes on.
    Partial,
    /// Longer than anyone writes one.
    TooLong,
}

/// Adds the bytes up to the next `\n` to `line`, taking them (and the `\n`) from `bytes`.
fn take_line(line: &mut Vec<u8>, bytes: &mut &[u8], limit: usize) -> Line {
    let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
        line.extend_from_slice(bytes);
        *bytes = &[];
        return if line.len() > limit { Line::TooLong } else { Line::Partial };
    };
    line.extend_from_slice(&bytes[..nl]);
    *bytes = &bytes[nl + 1..];
    Line::Complete
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingReader<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = buf.filled()[before..].to_vec();
            self.follow(&new);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingReader<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::FramingReader;

    fn conflicts_of(stream: &[u8], piece: usize) -> Vec<u64> {
        let (mut reader, conflicts) = FramingReader::new(());
        for chunk in stream.chunks(piece) {
            reader.follow(chunk);
        }
        (0..8).filter(|i| conflicts.take(*i)).collect()
    }

    #[test]
    fn both_headers_are_found_in_either_order_on_any_request_of_a_connection() {
        let stream = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n\
POST /a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n\
\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        for piece in [1, 2, 7, 1000] {
            assert_eq!(conflicts_of(stream, piece), [3], "read {piece} bytes at a time");
        }
        let first = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(conflicts_of(first, 5), [0]);
        // Header names inside a body are not heads.
        let body = b"POST / HTTP/1.1\r\ncontent-length: 59\r\n\r\nGET / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: x\r\n\r\n";
        assert_eq!(conflicts_of(body, 3), Vec::<u64>::new());
    }
}
