//! The request body, read from the stream as it arrives: the host sends it chunked, with no
//! length, so the size cap is enforced while reading, and a sender that stalls mid-body is
//! given up on instead of holding the connection forever.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is over the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("the request body stalled: no data for {0:?}")]
    Stalled(Duration),
    #[error("the request body could not be read: {0}")]
    Broken(String),
}

/// Collects `body` up to `limit` bytes. `declared` is the Content-Length, if any: a body that
/// announces more than the limit is refused before a byte is read.
pub async fn read_capped<S, B, E>(
    body: S,
    declared: Option<u64>,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
    E: std::fmt::Display,
{
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
    loop {
        let next = match tokio::time::timeout(idle, body.next()).await {
            Ok(next) => next,
            Err(_) => return Err(BodyError::Stalled(idle)),
        };
        match next {
            None => return Ok(collected.freeze()),
            Some(Err(e)) => return Err(BodyError::Broken(e.to_string())),
            Some(Ok(mut chunk)) => {
                if collected.len() + chunk.remaining() > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                while chunk.has_remaining() {
                    let piece = chunk.chunk();
                    collected.extend_from_slice(piece);
                    let n = piece.len();
                    chunk.advance(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn chunks_are_joined_and_the_cap_is_enforced_while_streaming() {
        let idle = Duration::from_secs(5);
        let got = read_capped(chunks(&[b"ab", b"", b"cd"]), None, 4, idle).await;
        assert_eq!(got.unwrap(), Bytes::from_static(b"abcd"));
        let over = read_capped(chunks(&[b"ab", b"cde"]), None, 4, idle).await;
        assert_eq!(over, Err(BodyError::TooLarge { limit: 4 }));
        let declared = read_capped(chunks(&[]), Some(5), 4, idle).await;
        assert_eq!(declared, Err(BodyError::TooLarge { limit: 4 }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_given_up_on() {
        let stalled = futures::stream::iter([Ok::<_, String>(Bytes::from_static(b"{"))])
            .chain(futures::stream::pending());
        let got = read_capped(stalled, None, 100, Duration::from_secs(30)).await;
        assert_eq!(got, Err(BodyError::Stalled(Duration::from_secs(30))));
    }
}
