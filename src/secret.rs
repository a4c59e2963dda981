//! A password or site key read from a file or the environment (never argv): zeroized on
//! drop, redacted in Debug; and buffers that may hold keys, wiped as they grow.

use zeroize::Zeroizing;

/// A password or site key: redacted in Debug, zeroized on drop.
#[derive(Clone)]
pub struct Secret(pub Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Appends `bytes` to `buf`, a buffer that may hold keys (an answer being read). When it
/// must grow, its bytes move to a new buffer at least twice as big and the old one is
/// wiped as it is dropped: a plain `Vec` grows by reallocation, which leaves the old copy
/// in freed memory, and `Zeroizing` wipes only the buffer it holds at the end.
pub fn extend_wiped(buf: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let mut bigger =
            Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2).max(4096)));
        bigger.extend_from_slice(buf);
        // The old buffer is dropped here, and wiped.
        *buf = bigger;
    }
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod wiped_tests {
    use super::*;

    #[test]
    fn growth_keeps_every_byte_and_never_reallocates_in_place() {
        let mut buf = Zeroizing::new(Vec::new());
        let mut expected = Vec::new();
        for i in 0..5_000u32 {
            let piece = i.to_le_bytes();
            let before = buf.capacity();
            extend_wiped(&mut buf, &piece);
            expected.extend_from_slice(&piece);
            // Capacity only ever changes by a move to a new buffer (this function's),
            // never by the Vec's own reallocation: it was enough, or it doubled at least.
            assert!(buf.capacity() == before || buf.capacity() >= (before * 2).max(4096));
        }
        assert_eq!(&buf[..], &expected[..]);
    }
}
