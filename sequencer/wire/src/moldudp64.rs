//! MoldUDP64 packet framing.
//!
//! ```text
//! offset  len  field
//!      0   10  session (ASCII, space padded)
//!     10    8  sequence number (u64 BE) of the first message block
//!     18    2  message count (u16 BE); 0 = heartbeat, 0xFFFF = end of session
//!     20    -  `count` blocks: u16 BE length, then that many bytes
//! ```
//! Client → server the sequence is the client's sequence number of the first
//! block; server → client it is the session's reply sequence of the first
//! reply. [`MoldPacket::new_checked`] validates the whole packet up front, so
//! iterating blocks afterwards cannot fail.

/// Header length in bytes.
pub const HEADER_LEN: usize = 20;
/// Session field length in bytes.
pub const SESSION_LEN: usize = 10;
/// Message count of a heartbeat.
pub const HEARTBEAT: u16 = 0;
/// Message count that marks the end of a session.
pub const END_OF_SESSION: u16 = 0xFFFF;
/// Largest UDP payload we build: 1,500-byte MTU minus IPv4 and UDP headers.
pub const MAX_PAYLOAD: usize = 1472;

/// A session name as carried on the wire.
pub type SessionName = [u8; SESSION_LEN];

/// Pads/truncates `name` into a wire session field.
pub fn session_name(name: &str) -> SessionName {
    crate::alpha::alpha_field(name.as_bytes())
}

/// Why a datagram is not a valid MoldUDP64 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoldError {
    /// Shorter than the 20-byte header.
    #[error("packet of {0} bytes is shorter than the header")]
    Truncated(usize),
    /// Block `index`'s 2-byte length is cut off.
    #[error("block {0} length field truncated")]
    BlockHeaderTruncated(u16),
    /// Block `index` claims more bytes than remain.
    #[error("block {0} claims {1} bytes beyond the packet")]
    BlockTruncated(u16, usize),
    /// Bytes remain after the last counted block.
    #[error("{0} bytes after the last block")]
    TrailingBytes(usize),
}

/// A MoldUDP64 retransmission request: a header with no message blocks
/// whose count is neither 0 (heartbeat) nor 0xFFFF (end of session). It
/// asks for `count` messages from `sequence` on (downstream sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmissionRequest {
    /// The session field.
    pub session: SessionName,
    /// First sequence number wanted.
    pub sequence: u64,
    /// How many messages are wanted.
    pub count: u16,
}

impl RetransmissionRequest {
    /// `Some` when `buf` is exactly a header asking for messages.
    pub fn parse(buf: &[u8]) -> Option<RetransmissionRequest> {
        let h: &[u8; HEADER_LEN] = buf.try_into().ok()?;
        let count = u16::from_be_bytes([h[18], h[19]]);
        if count == HEARTBEAT || count == END_OF_SESSION {
            return None;
        }
        let mut session = [0u8; SESSION_LEN];
        session.copy_from_slice(&h[..SESSION_LEN]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&h[10..18]);
        Some(RetransmissionRequest {
            session,
            sequence: u64::from_be_bytes(seq),
            count,
        })
    }

    /// Writes the request (a 20-byte header, no blocks): the inverse of
    /// [`parse`](Self::parse) for any count other than 0 and 0xFFFF.
    pub fn emit(&self, buf: &mut [u8; HEADER_LEN]) {
        write_header_only(buf, &self.session, self.sequence, self.count);
    }
}

/// A validated, borrowed MoldUDP64 packet.
#[derive(Clone, Copy, Debug)]
pub struct MoldPacket<'a> {
    buf: &'a [u8],
    /// Length of every block when all have the same one (at least one
    /// block); `None` for a packet that had to be walked.
    uniform_len: Option<u16>,
}

impl<'a> MoldPacket<'a> {
    /// Validates header, every block boundary, and that nothing trails.
    ///
    /// Why two ways: walking the blocks makes each length read depend on
    /// the one before, a chain of loads through a packet that arrived
    /// moments ago and may still be outside the core's caches. A packet
    /// whose blocks all have the first block's length (every packet of
    /// fixed-size messages) is recognised from lengths at fixed offsets,
    /// which the processor loads in parallel. Any other packet is walked;
    /// both give the same answer for every input.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, MoldError> {
        if buf.len() < HEADER_LEN {
            return Err(MoldError::Truncated(buf.len()));
        }
        let mut p = MoldPacket {
            buf,
            uniform_len: None,
        };
        let count = p.count();
        let blocks = if count == END_OF_SESSION { 0 } else { count };
        if let Some(len) = uniform_block_len(&buf[HEADER_LEN..], blocks) {
            p.uniform_len = Some(len);
            return Ok(p);
        }
        let mut at = HEADER_LEN;
        for i in 0..blocks {
            let Some(lb) = buf.get(at..at + 2) else {
                return Err(MoldError::BlockHeaderTruncated(i));
            };
            let len = u16::from_be_bytes([lb[0], lb[1]]) as usize;
            at += 2;
            if buf.len() - at < len {
                return Err(MoldError::BlockTruncated(i, len));
            }
            at += len;
        }
        if at != buf.len() {
            return Err(MoldError::TrailingBytes(buf.len() - at));
        }
        Ok(p)
    }

    /// The session field.
    pub fn session(&self) -> SessionName {
        let mut s = [0u8; SESSION_LEN];
        s.copy_from_slice(&self.buf[..SESSION_LEN]);
        s
    }

    /// Sequence number of the first block.
    pub fn sequence(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[10..18]);
        u64::from_be_bytes(b)
    }

    /// Message count as sent (0xFFFF for end of session).
    pub fn count(&self) -> u16 {
        u16::from_be_bytes([self.buf[18], self.buf[19]])
    }

    /// True for a heartbeat (no blocks).
    pub fn is_heartbeat(&self) -> bool {
        self.count() == HEARTBEAT
    }

    /// True for an end-of-session marker.
    pub fn is_end_of_session(&self) -> bool {
        self.count() == END_OF_SESSION
    }

    /// The message blocks, in order.
    pub fn blocks(&self) -> Blocks<'a> {
        Blocks {
            rest: &self.buf[HEADER_LEN..],
        }
    }

    /// The blocks from block `k` on (none when `k` is past the last): a
    /// constant-time offset for a packet of equal-length blocks, a walk
    /// over the first `k` otherwise.
    pub fn blocks_from(&self, k: usize) -> Blocks<'a> {
        let body = &self.buf[HEADER_LEN..];
        match self.uniform_len {
            Some(len) => Blocks {
                rest: body.get(k.saturating_mul(2 + usize::from(len))..).unwrap_or(&[]),
            },
            None => {
                let mut blocks = self.blocks();
                if k > 0 {
                    blocks.nth(k - 1);
                }
                blocks
            }
        }
    }

    /// The blocks as `N`-byte arrays, when every block is `N` bytes long
    /// (a packet of fixed-size messages); `None` otherwise, and for a
    /// packet without blocks. The same blocks as [`blocks`](Self::blocks),
    /// without a length read per block.
    #[inline]
    pub fn fixed_blocks<const N: usize>(&self) -> Option<FixedBlocks<'a, N>> {
        match self.uniform_len {
            Some(len) if usize::from(len) == N => Some(FixedBlocks {
                chunks: self.buf[HEADER_LEN..].chunks_exact(2 + N),
            }),
            _ => None,
        }
    }
}

/// The common block length when `body` is exactly `blocks` (at least one)
/// blocks that all carry the first block's length; `None` otherwise. The
/// lengths read after the first do not depend on one another.
#[inline]
fn uniform_block_len(body: &[u8], blocks: u16) -> Option<u16> {
    let first = body.get(..2)?;
    let len = u16::from_be_bytes([first[0], first[1]]);
    let stride = 2 + usize::from(len);
    if blocks == 0 || stride * usize::from(blocks) != body.len() {
        return None;
    }
    body.chunks_exact(stride)
        .all(|b| u16::from_be_bytes([b[0], b[1]]) == len)
        .then_some(len)
}

/// Iterator over the blocks of a packet whose blocks are all `N` bytes
/// ([`MoldPacket::fixed_blocks`]).
#[derive(Clone, Debug)]
pub struct FixedBlocks<'a, const N: usize> {
    chunks: core::slice::ChunksExact<'a, u8>,
}

impl<'a, const N: usize> Iterator for FixedBlocks<'a, N> {
    type Item = &'a [u8; N];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8; N]> {
        // Each chunk is 2 + N bytes: a length prefix, then the block.
        self.chunks.next()?.get(2..)?.try_into().ok()
    }
}

/// Iterator over the blocks of a validated packet.
#[derive(Clone, Debug)]
pub struct Blocks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Blocks<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let lb = self.rest.get(..2)?;
        let len = u16::from_be_bytes([lb[0], lb[1]]) as usize;
        let block = self.rest.get(2..2 + len)?;
        self.rest = &self.rest[2 + len..];
        Some(block)
    }
}

/// Builds a MoldUDP64 packet in a caller-owned buffer.
#[derive(Debug)]
pub struct MoldBuilder<'a> {
    buf: &'a mut [u8],
    len: usize,
    count: u16,
}

impl<'a> MoldBuilder<'a> {
    /// Starts a packet; `None` if `buf` cannot hold a header.
    pub fn new(buf: &'a mut [u8], session: &SessionName, sequence: u64) -> Option<Self> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        buf[..SESSION_LEN].copy_from_slice(session);
        buf[10..18].copy_from_slice(&sequence.to_be_bytes());
        buf[18..20].copy_from_slice(&0u16.to_be_bytes());
        Some(MoldBuilder {
            buf,
            len: HEADER_LEN,
            count: 0,
        })
    }

    /// [`push`](Self::push) for a block whose length is known at compile
    /// time (a 100-byte message): the copy is a fixed run of moves, inlined
    /// where a packet is built, rather than a call sized at run time.
    #[inline(always)]
    pub fn push_array<const N: usize>(&mut self, block: &[u8; N]) -> bool {
        let need = 2 + N;
        let cap = self.buf.len().min(MAX_PAYLOAD);
        if N > u16::MAX as usize || self.len + need > cap || self.count >= END_OF_SESSION - 1 {
            return false;
        }
        let Some(place) = self.buf.get_mut(self.len..self.len + need) else {
            return false;
        };
        place[..2].copy_from_slice(&(N as u16).to_be_bytes());
        place[2..].copy_from_slice(block);
        self.len += need;
        self.count += 1;
        true
    }

    /// Appends a block; false (nothing written) when it does not fit in the
    /// buffer or in [`MAX_PAYLOAD`], or the count would reach 0xFFFF.
    pub fn push(&mut self, block: &[u8]) -> bool {
        let need = 2 + block.len();
        let cap = self.buf.len().min(MAX_PAYLOAD);
        if self.len + need > cap || block.len() > u16::MAX as usize || self.count >= END_OF_SESSION - 1 {
            return false;
        }
        self.buf[self.len..self.len + 2].copy_from_slice(&(block.len() as u16).to_be_bytes());
        self.buf[self.len + 2..self.len + need].copy_from_slice(block);
        self.len += need;
        self.count += 1;
        true
    }

    /// Blocks so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Writes the count; returns the packet length.
    pub fn finish(self) -> usize {
        self.buf[18..20].copy_from_slice(&self.count.to_be_bytes());
        self.len
    }
}

/// Writes a block-less packet (heartbeat, end of session, or a
/// retransmission request whose count is the number of messages wanted).
pub fn write_header_only(buf: &mut [u8; HEADER_LEN], session: &SessionName, sequence: u64, count: u16) {
    buf[..SESSION_LEN].copy_from_slice(session);
    buf[10..18].copy_from_slice(&sequence.to_be_bytes());
    buf[18..20].copy_from_slice(&count.to_be_bytes());
}

/// Most 100-byte messages one packet carries within [`MAX_PAYLOAD`].
pub const MAX_MESSAGES_PER_PACKET: usize = (MAX_PAYLOAD - HEADER_LEN) / (2 + 100);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_header_with_a_count_and_no_blocks_is_a_retransmission_request() {
        let mut h = [0u8; HEADER_LEN];
        write_header_only(&mut h, &session_name("S1"), 40, 7);
        assert_eq!(
            RetransmissionRequest::parse(&h),
            Some(RetransmissionRequest {
                session: session_name("S1"),
                sequence: 40,
                count: 7
            })
        );
        assert!(
            MoldPacket::new_checked(&h).is_err(),
            "not a packet: its blocks are missing"
        );
        for count in [HEARTBEAT, END_OF_SESSION] {
            write_header_only(&mut h, &session_name("S1"), 40, count);
            assert_eq!(RetransmissionRequest::parse(&h), None);
        }
        assert_eq!(RetransmissionRequest::parse(&[0u8; HEADER_LEN + 1]), None);
    }

    #[test]
    fn a_request_emits_what_parses_back() {
        let r = RetransmissionRequest {
            session: session_name("FEED"),
            sequence: 1 << 40,
            count: 0xFFFE,
        };
        let mut h = [0u8; HEADER_LEN];
        r.emit(&mut h);
        assert_eq!(RetransmissionRequest::parse(&h), Some(r));
        assert_eq!(&h[10..18], &(1u64 << 40).to_be_bytes());
    }

    proptest! {
        /// `push_array` writes what `push` writes and refuses where it
        /// refuses, whatever the buffer size.
        #[test]
        fn push_array_builds_what_push_builds(buf_len in 0usize..1600, blocks in 0usize..20, fill in any::<u8>()) {
            let block = [fill; 100];
            let mut a = vec![0u8; buf_len];
            let mut b = vec![0u8; buf_len];
            let (Some(mut x), Some(mut y)) = (
                MoldBuilder::new(&mut a, &session_name("S"), 9),
                MoldBuilder::new(&mut b, &session_name("S"), 9),
            ) else {
                prop_assert!(buf_len < HEADER_LEN);
                return Ok(());
            };
            for _ in 0..blocks {
                prop_assert_eq!(x.push(&block), y.push_array(&block));
            }
            prop_assert_eq!(x.finish(), y.finish());
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn fourteen_messages_fit() {
        assert_eq!(MAX_MESSAGES_PER_PACKET, 14);
        let mut buf = [0u8; 2048];
        let mut b = MoldBuilder::new(&mut buf, &session_name("S1"), 7).unwrap();
        for _ in 0..14 {
            assert!(b.push(&[1u8; 100]));
        }
        assert!(!b.push(&[1u8; 100]), "15th must not fit in 1472 bytes");
        let n = b.finish();
        assert_eq!(n, 20 + 14 * 102);
        let p = MoldPacket::new_checked(&buf[..n]).unwrap();
        assert_eq!(
            (p.sequence(), p.count(), p.session()),
            (7, 14, session_name("S1"))
        );
        assert_eq!(p.blocks().count(), 14);
    }

    #[test]
    fn each_malformation_is_named() {
        let mut buf = [0u8; 2048];
        let mut b = MoldBuilder::new(&mut buf, &session_name("S"), 1).unwrap();
        b.push(&[9u8; 100]);
        b.push(&[8u8; 100]);
        let n = b.finish();
        assert_eq!(
            MoldPacket::new_checked(&buf[..19]).err(),
            Some(MoldError::Truncated(19))
        );
        assert_eq!(
            MoldPacket::new_checked(&buf[..21]).err(),
            Some(MoldError::BlockHeaderTruncated(0))
        );
        assert_eq!(
            MoldPacket::new_checked(&buf[..n - 1]).err(),
            Some(MoldError::BlockTruncated(1, 100))
        );
        assert_eq!(
            MoldPacket::new_checked(&buf[..n + 3]).err(),
            Some(MoldError::TrailingBytes(3))
        );
        // Count says 3, only 2 present.
        buf[19] = 3;
        assert_eq!(
            MoldPacket::new_checked(&buf[..n]).err(),
            Some(MoldError::BlockHeaderTruncated(2))
        );
    }

    /// The plain block walk: the reference the fast path must agree with.
    fn walk(buf: &[u8]) -> Result<Vec<Vec<u8>>, MoldError> {
        if buf.len() < HEADER_LEN {
            return Err(MoldError::Truncated(buf.len()));
        }
        let count = u16::from_be_bytes([buf[18], buf[19]]);
        let blocks = if count == END_OF_SESSION { 0 } else { count };
        let (mut at, mut out) = (HEADER_LEN, Vec::new());
        for i in 0..blocks {
            let Some(lb) = buf.get(at..at + 2) else {
                return Err(MoldError::BlockHeaderTruncated(i));
            };
            let len = usize::from(u16::from_be_bytes([lb[0], lb[1]]));
            let Some(b) = buf.get(at + 2..at + 2 + len) else {
                return Err(MoldError::BlockTruncated(i, len));
            };
            out.push(b.to_vec());
            at += 2 + len;
        }
        if at != buf.len() {
            return Err(MoldError::TrailingBytes(buf.len() - at));
        }
        Ok(out)
    }

    #[test]
    fn heartbeat_and_end_of_session() {
        let mut h = [0u8; HEADER_LEN];
        write_header_only(&mut h, &session_name("A"), 5, HEARTBEAT);
        assert!(MoldPacket::new_checked(&h).unwrap().is_heartbeat());
        write_header_only(&mut h, &session_name("A"), 5, END_OF_SESSION);
        let p = MoldPacket::new_checked(&h).unwrap();
        assert!(p.is_end_of_session());
        assert_eq!(p.blocks().count(), 0);
    }

    proptest! {
        #[test]
        fn parser_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(p) = MoldPacket::new_checked(&bytes) {
                let total: usize = p.blocks().map(|b| 2 + b.len()).sum();
                prop_assert_eq!(total + HEADER_LEN, bytes.len());
            }
        }

        #[test]
        fn uniform_blocks_are_judged_as_the_walk_judges_them(
            len in proptest::prop_oneof![0usize..40, 3usize..4, 5usize..6],
            blocks in 0usize..8,
            count in 0u16..10,
            corrupt in proptest::option::of((any::<proptest::sample::Index>(), any::<u8>())),
            cut in 0usize..4,
            extra in 0usize..4,
        ) {
            // Packets near the uniform shape: right or wrong count, one
            // length byte changed, bytes cut off or added.
            let mut buf = vec![0u8; HEADER_LEN];
            buf[18..20].copy_from_slice(&count.to_be_bytes());
            for k in 0..blocks {
                buf.extend_from_slice(&(len as u16).to_be_bytes());
                buf.extend(std::iter::repeat_n(k as u8, len));
            }
            if let Some((at, v)) = corrupt {
                if blocks > 0 {
                    let i = HEADER_LEN + at.index(blocks) * (2 + len) + usize::from(v & 1);
                    buf[i] = v;
                }
            }
            buf.truncate(buf.len() - cut.min(buf.len() - HEADER_LEN));
            buf.extend(std::iter::repeat_n(7u8, extra));
            let got = MoldPacket::new_checked(&buf).map(|p| p.blocks().map(|b| b.to_vec()).collect::<Vec<_>>());
            prop_assert_eq!(&got, &walk(&buf));
            if let (Ok(p), Ok(all)) = (MoldPacket::new_checked(&buf), got) {
                // The fixed-size view, where it exists, is the same blocks,
                // and exists whenever there are blocks of one length.
                let same_len = !all.is_empty() && all.iter().all(|b| b.len() == all[0].len());
                let fixed: Option<Vec<Vec<u8>>> = match all.first().map(Vec::len) {
                    Some(3) => p.fixed_blocks::<3>().map(|it| it.map(|b| b.to_vec()).collect()),
                    _ => p.fixed_blocks::<5>().map(|it| it.map(|b| b.to_vec()).collect()),
                };
                let first_len = all.first().map_or(0, Vec::len);
                if same_len && (first_len == 3 || first_len == 5) {
                    prop_assert_eq!(fixed.as_ref(), Some(&all));
                } else {
                    prop_assert!(fixed.is_none());
                }
                for k in 0..all.len() + 2 {
                    let from: Vec<Vec<u8>> = p.blocks_from(k).map(|b| b.to_vec()).collect();
                    prop_assert_eq!(&from[..], &all[k.min(all.len())..], "from block {}", k);
                }
            }
        }

        #[test]
        fn build_then_parse(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..12), seq in any::<u64>()) {
            let mut buf = [0u8; 2048];
            let mut b = MoldBuilder::new(&mut buf, &session_name("P"), seq).unwrap();
            let mut pushed = Vec::new();
            for blk in &blocks {
                if b.push(blk) { pushed.push(blk.clone()); }
            }
            let n = b.finish();
            let p = MoldPacket::new_checked(&buf[..n]).unwrap();
            prop_assert_eq!(p.sequence(), seq);
            let got: Vec<Vec<u8>> = p.blocks().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, pushed);
        }
    }
}
