//! Storage key of a node path: packed nibbles followed by the nibble count, so that paths of
//! different lengths never collide (`0x1` and `0x10` pack alike) and all nodes under a prefix
//! of whole bytes share that byte prefix.

use alloy_trie::Nibbles;

/// Encodes `path` as a storage key: the packed nibbles (an odd last nibble padded with zero)
/// followed by one byte holding the nibble count. Unique per path; at most 33 bytes.
pub fn encode_path(path: &Nibbles) -> Vec<u8> {
    let packed_len = path.len().div_ceil(2);
    let mut out = vec![0u8; packed_len + 1];
    path.pack_to(&mut out[..packed_len]);
    // A path has at most 64 nibbles, so the count fits a byte.
    out[packed_len] = path.len() as u8;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_for_prefixes_and_padding() {
        let paths = [
            Nibbles::new(),
            Nibbles::from_nibbles([0x1]),
            Nibbles::from_nibbles([0x1, 0x0]),
            Nibbles::from_nibbles([0x0]),
            Nibbles::from_nibbles([0x0, 0x0]),
            Nibbles::from_nibbles([0xa, 0xb, 0xc]),
        ];
        let keys: std::collections::HashSet<_> = paths.iter().map(encode_path).collect();
        assert_eq!(keys.len(), paths.len());
        assert_eq!(encode_path(&Nibbles::new()), vec![0]);
        assert_eq!(
            encode_path(&Nibbles::from_nibbles([0xa, 0xb, 0xc])),
            vec![0xab, 0xc0, 3]
        );
        let full = Nibbles::unpack([0xff; 32]);
        let key = encode_path(&full);
        assert_eq!(key.len(), 33);
        assert_eq!(key[32], 64);
    }
}
