//! Property-based fuzzing of the frame decoder, the parser, the mapping and the ACK builder:
//! arbitrary bytes, in arbitrary pieces, never panic, never hang (every step is linear in
//! its input), never hold more than the frame limit, and every frame gets an ACK that is a
//! well-formed frame echoing whatever control id could be read.
//!
//! `./test.sh` runs the default number of cases. The longer run, in release mode:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release -p keta-mllp --test fuzz
//! ```

use keta_mllp::{
    AckCode, FrameDecoder, FrameEvent, ObservationTable, TimeWindow, build_ack, encode_frame, map_readings,
    parse_header, parse_oru, read_ack,
};
use proptest::prelude::*;
use time::UtcOffset;
use time::macros::datetime;

const MAX: usize = 2048;

const VALID: &str = "MSH|^~\\&|MON|GW3|KETA|CLINIC|20261207101500+0000||ORU^R01|C-1|P|2.6\r\
PV1||O|INFUSION^^CHAIR-3\r\
OBR|1|||x|||20261207101455+0000\r\
OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||132|266016^MDC_DIM_MMHG^MDC|||||R\r\
OBX|2|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC||84|266016^MDC_DIM_MMHG^MDC|||||R\r\
OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||96|262688^MDC_DIM_PERCENT^MDC|||||R\r";

/// What the listener does with one frame, minus the handler: read, map, answer.
fn answer(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let header = parse_header(&text).ok();
    let code = match parse_oru(&text) {
        Ok(m) => {
            let now = datetime!(2026-12-07 10:15:30 UTC);
            match map_readings(&m, ObservationTable::builtin(), UtcOffset::UTC, now, TimeWindow::default()) {
                Ok(_) => AckCode::Accept,
                Err(_) => AckCode::Error,
            }
        }
        Err(_) => AckCode::Reject,
    };
    let ack = build_ack(header.as_ref(), code, "reason", "K1", datetime!(2026-12-07 10:15:31 UTC));
    // The ACK is one well-formed frame: no framing bytes inside, and it reads back.
    assert!(!ack.bytes().any(|b| b == 0x0B || b == 0x1C), "framing byte inside an ACK");
    let mut d = FrameDecoder::new(usize::MAX / 2);
    let mut out = Vec::new();
    d.push(&encode_frame(ack.as_bytes()), &mut out);
    assert_eq!(out.len(), 1);
    let (read_code, _) = read_ack(&ack).expect("an ACK has an MSA");
    assert_eq!(read_code, code);
    ack
}

fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<FrameEvent> {
    let mut d = FrameDecoder::new(MAX);
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let end = (start + c).min(bytes.len());
        d.push(&bytes[start..end], &mut out);
        start = end;
    }
    d.push(&bytes[start..], &mut out);
    out
}

/// Bytes that look like MLLP and HL7 more often than uniform noise does.
fn hl7ish() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => any::<u8>(),
        2 => Just(0x0Bu8),
        2 => Just(0x1Cu8),
        2 => Just(b'\r'),
        3 => Just(b'|'),
        2 => Just(b'^'),
        1 => Just(b'~'),
        1 => Just(b'\\'),
        1 => Just(b'&'),
    ];
    prop::collection::vec(byte, 0..4096)
}

proptest! {
    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces_never_panic(bytes in hl7ish(), cuts in prop::collection::vec(0usize..64, 0..64)) {
        let events = decode_in_pieces(&bytes, &cuts);
        for e in &events {
            match e {
                FrameEvent::Frame(f) => {
                    prop_assert!(f.len() <= MAX);
                    answer(f);
                }
                FrameEvent::Oversized { head } => {
                    prop_assert!(head.len() <= MAX);
                    answer(head);
                }
                FrameEvent::Abandoned { .. } => {}
            }
        }
    }

    #[test]
    fn how_the_input_is_cut_never_changes_the_frames(bytes in hl7ish(), cuts in prop::collection::vec(0usize..64, 0..64)) {
        prop_assert_eq!(decode_in_pieces(&bytes, &cuts), decode_in_pieces(&bytes, &[]));
    }

    #[test]
    fn a_valid_message_mutated_never_panics_and_is_acknowledged(
        edits in prop::collection::vec((0usize..VALID.len(), any::<u8>(), 0usize..3), 0..8)
    ) {
        let mut m = VALID.as_bytes().to_vec();
        for (at, b, kind) in edits {
            let at = at.min(m.len());
            match kind {
                0 => m.insert(at, b),
                1 if at < m.len() => { m.remove(at); }
                _ if at < m.len() => m[at] = b,
                _ => {}
            }
        }
        let framed = encode_frame(&m);
        let events = decode_in_pieces(&framed, &[]);
        for e in &events {
            if let FrameEvent::Frame(f) = e {
                let ack = answer(f);
                // Whenever the header reads, the ACK echoes its control id.
                if let Ok(h) = parse_header(&String::from_utf8_lossy(f))
                    && !h.control_id.contains(['|', '^', '~', '\\', '&', '\r', '\n', '\u{0b}', '\u{1c}'])
                {
                    prop_assert_eq!(read_ack(&ack).unwrap().1, h.control_id);
                }
            }
        }
    }

    #[test]
    fn any_text_through_the_parser_and_mapping_never_panics(s in "\\PC{0,400}") {
        answer(s.as_bytes());
        answer(format!("MSH|^~\\&|{s}").as_bytes());
        answer(format!("MSH|^~\\&|A|B|C|D|20261207101500||ORU^R01|X|P|2.6\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||{s}|%\r").as_bytes());
    }
}

#[test]
fn the_valid_sample_is_accepted() {
    let ack = answer(VALID.as_bytes());
    assert_eq!(read_ack(&ack), Some((AckCode::Accept, "C-1".into())));
}
