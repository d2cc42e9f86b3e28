//! The flood's client side on the wire: one request on a connection of its
//! own, written while the answer is read; a request on a keep-alive
//! connection; and the answer's parsing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How one request ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// An answer with this status; `saturated` when it is the admission
    /// `503`, `connections` when it is the connection-limit `503`,
    /// `retry_after` when it has a `Retry-After` header.
    Answered {
        status: u16,
        saturated: bool,
        connections: bool,
        retry_after: bool,
        after: Duration,
    },
    /// No complete answer: connection refused, reset or closed, timeout.
    Unanswered(String),
}

impl Outcome {
    /// The outcome of a request started at `started` that ended with
    /// `result` (`None`: no answer within `timeout`).
    pub(super) fn of(
        result: Option<std::io::Result<Answer>>,
        started: Instant,
        timeout: Duration,
    ) -> Outcome {
        match result {
            Some(Ok(answer)) => Outcome::Answered {
                status: answer.status,
                saturated: answer.body.contains("saturated"),
                connections: answer.body.contains("too many open connections"),
                retry_after: answer.retry_after,
                after: started.elapsed(),
            },
            Some(Err(e)) => Outcome::Unanswered(e.to_string()),
            None => Outcome::Unanswered(format!("no answer within {timeout:?}")),
        }
    }
}

/// An answer read off the wire.
#[derive(Debug)]
pub(super) struct Answer {
    /// Its status code.
    pub(super) status: u16,
    /// Whether its head has a `Retry-After` header.
    pub(super) retry_after: bool,
    /// Its body (up to 64 KiB), as text.
    pub(super) body: String,
}

/// One client: connect, write the request while reading the answer.
pub(super) async fn one_client(
    addr: SocketAddr,
    head: Bytes,
    body: Bytes,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        let stream = TcpStream::connect(addr).await?;
        exchange(stream, head, body).await
    })
    .await
    .ok();
    Outcome::of(result, started, timeout)
}

/// Sends one request on a keep-alive connection and reads its whole
/// answer, leaving the connection open for the next.
pub(super) async fn ask(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<Answer> {
    stream.write_all(request).await?;
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    while !complete(&data) {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    parse(&data)
}

/// Sends the request on `stream` and reads the answer (the head and up to
/// 64 KiB of body), writing and reading at once.
pub(super) async fn exchange(
    stream: TcpStream,
    head: Bytes,
    body: Bytes,
) -> std::io::Result<Answer> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    // The write half is borrowed, not moved: dropped, it would shut the
    // connection down for writing, and hyper closes a connection whose
    // client half-closes, dropping the request.
    let write = async {
        writer.write_all(&head).await?;
        writer.write_all(&body).await?;
        writer.flush().await
    };
    let read = async move {
        let mut data = Vec::new();
        let mut chunk = [0u8; 4096];
        // Until the server closes, the answer is complete (head and
        // `Content-Length` bytes of body), or 64 KiB came.
        while !complete(&data) && data.len() <= 64 * 1024 {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(data)
    };
    tokio::pin!(write, read);
    let mut writing = true;
    let data = loop {
        tokio::select! {
            data = &mut read => break data,
            // A failed write (the server answered and closed early) is
            // not the end: the answer may be there to read.
            _ = &mut write, if writing => writing = false,
        }
    };
    let data = match data {
        Ok(data) => data,
        // A reset after the answer arrived still leaves nothing to parse
        // here: report it.
        Err(e) => return Err(e),
    };
    parse(&data)
}

/// The answer in `data`: its status, whether it has `Retry-After`, and its
/// body.
fn parse(data: &[u8]) -> std::io::Result<Answer> {
    let text = String::from_utf8_lossy(data);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes without an HTTP answer", data.len()),
            )
        })?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let retry_after = head
        .lines()
        .any(|line| line.to_ascii_lowercase().starts_with("retry-after:"));
    Ok(Answer {
        status,
        retry_after,
        body: body.to_string(),
    })
}

/// Whether `data` holds a whole answer: a head, and as many body bytes as
/// its `Content-Length` says (none without one).
fn complete(data: &[u8]) -> bool {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    data.len() >= end + 4 + length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_with_its_body() {
        assert!(!complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{"));
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"));
        assert!(complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
    }

    #[test]
    fn an_answer_is_parsed_with_its_retry_after() {
        let answer =
            parse(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n{}").unwrap();
        assert_eq!((answer.status, answer.retry_after), (503, true));
        assert_eq!(answer.body, "{}");
        let answer = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\npong").unwrap();
        assert_eq!((answer.status, answer.retry_after), (200, false));
        assert!(parse(b"").is_err());
    }
}
