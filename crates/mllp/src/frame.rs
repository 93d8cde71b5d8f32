//! MLLP framing (HL7 v2 Minimal Lower Layer Protocol): a message is `0x0B`, the message's
//! bytes, then `0x1C 0x0D`.
//!
//! The decoder is a byte-at-a-time state machine, so input may arrive in any pieces (one
//! byte at a time from a slow sender, or several frames in one read). Bytes outside a frame
//! are skipped (resynchronisation after garbage), a start byte inside an unfinished frame
//! abandons that frame (the sender started over), and a frame longer than the limit is
//! dropped up to its end marker while its head is kept, so the listener can still name the
//! message it refuses. Memory per connection never exceeds the limit.

/// Start of a block.
pub const START_BLOCK: u8 = 0x0B;
/// First byte of the end of a block.
pub const END_BLOCK: u8 = 0x1C;
/// Second byte of the end of a block.
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// How many bytes of an oversized frame are kept so its header can be read.
pub const OVERSIZED_HEAD_BYTES: usize = 4096;

/// What the decoder found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// A whole frame's content, without the framing bytes.
    Frame(Vec<u8>),
    /// A frame longer than the limit; its first bytes (at most [`OVERSIZED_HEAD_BYTES`]).
    Oversized { head: Vec<u8> },
    /// An unfinished frame abandoned because a new start byte arrived.
    Abandoned { bytes: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: bytes are skipped until a start byte.
    Idle,
    /// Inside a frame.
    InFrame,
    /// Inside a frame that went over the limit: bytes are dropped until its end.
    Discarding,
}

/// Splits a byte stream into MLLP frames.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    state: State,
    buf: Vec<u8>,
    previous: u8,
    skipped: u64,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_frame_bytes` (content, without framing).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes: max_frame_bytes.max(1), state: State::Idle, buf: Vec::new(), previous: 0, skipped: 0 }
    }

    /// Bytes skipped outside any frame so far (garbage between frames).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Whether a frame has started and not yet ended (a connection closed now loses it).
    pub fn in_frame(&self) -> bool {
        self.state != State::Idle
    }

    /// Feeds bytes; appends what they complete to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<FrameEvent>) {
        for &b in input {
            match self.state {
                State::Idle => {
                    if b == START_BLOCK {
                        self.state = State::InFrame;
                        self.buf.clear();
                    } else {
                        self.skipped += 1;
                    }
                }
                State::InFrame => {
                    if b == START_BLOCK {
                        out.push(FrameEvent::Abandoned { bytes: self.buf.len() });
                        self.buf.clear();
                    } else if b == CARRIAGE_RETURN && self.buf.last() == Some(&END_BLOCK) {
                        self.buf.pop();
                        out.push(FrameEvent::Frame(std::mem::take(&mut self.buf)));
                        self.state = State::Idle;
                    } else {
                        self.buf.push(b);
                        // One byte of slack: the last byte may be the first half of the end marker.
                        if self.buf.len() > self.max_frame_bytes + 1 {
                            self.buf.truncate(OVERSIZED_HEAD_BYTES.min(self.max_frame_bytes));
                            out.push(FrameEvent::Oversized { head: std::mem::take(&mut self.buf) });
                            self.state = State::Discarding;
                            self.previous = b;
                        }
                    }
                }
                State::Discarding => {
                    if b == START_BLOCK {
                        self.state = State::InFrame;
                        self.buf.clear();
                    } else if b == CARRIAGE_RETURN && self.previous == END_BLOCK {
                        self.state = State::Idle;
                    }
                    self.previous = b;
                }
            }
        }
    }
}

/// Wraps a message in MLLP framing.
pub fn encode_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message);
    out.push(END_BLOCK);
    out.push(CARRIAGE_RETURN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(max: usize, chunks: &[&[u8]]) -> Vec<FrameEvent> {
        let mut d = FrameDecoder::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out);
        }
        out
    }

    #[test]
    fn a_whole_frame_is_returned_without_its_framing() {
        let f = encode_frame(b"MSH|^~\\&|A\rPID|1\r");
        assert_eq!(decode(100, &[&f]), vec![FrameEvent::Frame(b"MSH|^~\\&|A\rPID|1\r".to_vec())]);
    }

    #[test]
    fn a_frame_sent_one_byte_at_a_time_is_the_same_frame() {
        let f = encode_frame(b"MSH|x\r");
        let chunks: Vec<&[u8]> = f.chunks(1).collect();
        assert_eq!(decode(100, &chunks), vec![FrameEvent::Frame(b"MSH|x\r".to_vec())]);
    }

    #[test]
    fn two_frames_in_one_read_are_two_frames() {
        let mut b = encode_frame(b"one");
        b.extend(encode_frame(b"two"));
        assert_eq!(decode(100, &[&b]), vec![FrameEvent::Frame(b"one".to_vec()), FrameEvent::Frame(b"two".to_vec())]);
    }

    #[test]
    fn garbage_before_and_between_frames_is_skipped() {
        let mut b = b"\x00\xffnoise\r\n".to_vec();
        b.extend(encode_frame(b"one"));
        b.extend(b"\x1c\x0d more noise");
        b.extend(encode_frame(b"two"));
        let mut d = FrameDecoder::new(100);
        let mut out = Vec::new();
        d.push(&b, &mut out);
        assert_eq!(out, vec![FrameEvent::Frame(b"one".to_vec()), FrameEvent::Frame(b"two".to_vec())]);
        assert_eq!(d.skipped_bytes(), 9 + 13);
    }

    #[test]
    fn a_restarted_frame_abandons_the_unfinished_one() {
        let mut b = vec![START_BLOCK];
        b.extend(b"half a mess");
        b.extend(encode_frame(b"whole"));
        assert_eq!(decode(100, &[&b]), vec![FrameEvent::Abandoned { bytes: 11 }, FrameEvent::Frame(b"whole".to_vec())]);
    }

    #[test]
    fn an_end_block_without_carriage_return_is_content() {
        let f = encode_frame(b"a\x1cb");
        assert_eq!(decode(100, &[&f]), vec![FrameEvent::Frame(b"a\x1cb".to_vec())]);
    }

    #[test]
    fn a_frame_of_exactly_the_limit_passes_and_one_byte_more_is_refused() {
        let ok = vec![b'x'; 10];
        assert_eq!(decode(10, &[&encode_frame(&ok)]), vec![FrameEvent::Frame(ok)]);
        let big = vec![b'y'; 11];
        let mut b = encode_frame(&big);
        b.extend(encode_frame(b"next"));
        let out = decode(10, &[&b]);
        assert_eq!(out, vec![FrameEvent::Oversized { head: vec![b'y'; 10] }, FrameEvent::Frame(b"next".to_vec())]);
    }

    #[test]
    fn an_oversized_frame_split_across_reads_is_dropped_to_its_end() {
        let big = vec![b'z'; 50];
        let f = encode_frame(&big);
        let chunks: Vec<&[u8]> = f.chunks(7).collect();
        let mut all = chunks.clone();
        let next = encode_frame(b"ok");
        all.push(&next);
        let out = decode(20, &all);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], FrameEvent::Oversized { head } if head.len() == 20));
        assert_eq!(out[1], FrameEvent::Frame(b"ok".to_vec()));
    }
}
