//! The sync protocol's framing: one request and one response per stream, each a 4-byte
//! big-endian length followed by that many opaque bytes.
//!
//! The payload format belongs to the sync logic (node/engine/src/wire); the network only bounds
//! it. A length above `max-message-bytes` is refused before anything is allocated, so a peer
//! cannot make us buffer more than one maximal message per stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// Length-prefixed `Vec<u8>` requests and responses with a size limit.
#[derive(Debug, Clone)]
pub struct BytesCodec {
    max_bytes: usize,
}

impl BytesCodec {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }

    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "message of {len} bytes exceeds the limit of {}",
                    self.max_bytes
                ),
            ));
        }
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn write<T: AsyncWrite + Unpin + Send>(
        &self,
        io: &mut T,
        data: Vec<u8>,
    ) -> io::Result<()> {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|len| *len as usize <= self.max_bytes)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "message of {} bytes exceeds the limit of {}",
                        data.len(),
                        self.max_bytes
                    ),
                )
            })?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&data).await?;
        io.close().await
    }
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let codec = BytesCodec::new(8);
        let mut wire = Cursor::new(Vec::new());
        codec.write(&mut wire, b"12345678".to_vec()).await.unwrap();
        assert_eq!(wire.get_ref()[..4], [0, 0, 0, 8]);
        wire.set_position(0);
        assert_eq!(codec.read(&mut wire).await.unwrap(), b"12345678");

        let mut wire = Cursor::new(Vec::new());
        let err = codec.write(&mut wire, vec![0; 9]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            wire.get_ref().is_empty(),
            "nothing written for an oversized message"
        );

        // A peer announcing 9 bytes is refused before the body is read.
        let mut wire = Cursor::new([0u8, 0, 0, 9].into_iter().chain([1; 9]).collect::<Vec<_>>());
        assert_eq!(
            codec.read(&mut wire).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A truncated body is an error, not a short message.
        let mut wire = Cursor::new(vec![0u8, 0, 0, 4, 1, 2]);
        assert_eq!(
            codec.read(&mut wire).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
