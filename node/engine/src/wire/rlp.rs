//! The few RLP building blocks the wire messages are written with: a bounded reader over one
//! list (every item read checks its header against the bytes left before anything is
//! allocated, and a list must be read to its end), and list writing.

use alloy_primitives::Bytes;
use alloy_rlp::{Decodable, Encodable, Header};

use super::{VERSION, WireError};

/// The items of one RLP list, read in order.
pub(super) struct List<'a> {
    buf: &'a [u8],
}

impl<'a> List<'a> {
    /// Opens the list at the front of `buf` and moves `buf` past it.
    pub(super) fn open(buf: &mut &'a [u8]) -> Result<Self, WireError> {
        Ok(Self {
            buf: Header::decode_bytes(buf, true)?,
        })
    }

    /// The next item as `T` (integers must be canonical, fixed-size byte strings exact).
    pub(super) fn item<T: Decodable>(&mut self) -> Result<T, WireError> {
        Ok(T::decode(&mut self.buf)?)
    }

    /// The next item, a list.
    pub(super) fn list(&mut self) -> Result<List<'a>, WireError> {
        List::open(&mut self.buf)
    }

    /// The next item, a byte string of at most `max` bytes (copied only once its length is
    /// known to be within both the message and `max`).
    pub(super) fn bytes(&mut self, what: &'static str, max: usize) -> Result<Bytes, WireError> {
        let raw = Header::decode_bytes(&mut self.buf, false)?;
        if raw.len() > max {
            return Err(WireError::TooLong {
                what,
                len: raw.len(),
                max,
            });
        }
        Ok(Bytes::copy_from_slice(raw))
    }

    /// An optional value: the next item is a list of zero items (`None`) or of one value.
    pub(super) fn option<T>(
        &mut self,
        what: &'static str,
        read: impl FnOnce(&mut List<'a>) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        let mut inner = self.list()?;
        if inner.is_empty() {
            return Ok(None);
        }
        let value = read(&mut inner)?;
        inner.finish(what)?;
        Ok(Some(value))
    }

    /// Whether every item was read.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Ends the list: items left over are an error (the format has no optional tail).
    pub(super) fn finish(self, what: &'static str) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingItems(what))
        }
    }
}

/// The list of a whole message: the version byte, then exactly one RLP list.
pub(super) fn open_message(bytes: &[u8]) -> Result<List<'_>, WireError> {
    let (&version, mut rest) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::Version { found: version });
    }
    let list = List::open(&mut rest)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(list)
}

/// Appends an RLP list whose payload `items` writes.
pub(super) fn write_list(out: &mut Vec<u8>, items: impl FnOnce(&mut Vec<u8>)) {
    let mut payload = Vec::new();
    items(&mut payload);
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(out);
    out.extend_from_slice(&payload);
}

/// Appends an optional value as a list of zero or one item.
pub(super) fn write_option<T: Encodable>(out: &mut Vec<u8>, value: Option<&T>) {
    write_list(out, |out| {
        if let Some(value) = value {
            value.encode(out);
        }
    });
}

/// A whole message: the version byte and the list `items` writes.
pub(super) fn message(items: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![VERSION];
    write_list(&mut out, items);
    out
}
