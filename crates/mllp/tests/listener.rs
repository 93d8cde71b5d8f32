//! The listener over real sockets: ACK after the handler, one ACK per frame whatever the
//! pieces, slow and stuck senders do not hold up others, oversized frames are refused with
//! AR, peers outside the allowed list are closed.

// Helpers outside `#[test]` functions unwrap too, which clippy's allow-unwrap-in-tests does
// not cover; in a test a panic is the failure message all the same.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keta_mllp::listener::serve;
use keta_mllp::{AckCode, ListenerConfig, ListenerStats, MessageHandler, Received, Reply, encode_frame, read_ack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counting {
    seen: AtomicUsize,
}

impl MessageHandler for Counting {
    async fn handle(&self, r: Received) -> Reply {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if r.oversized {
            Reply { code: AckCode::Reject, text: "message too large".into() }
        } else if r.text.starts_with("MSH") {
            Reply { code: AckCode::Accept, text: String::new() }
        } else {
            Reply { code: AckCode::Reject, text: "not HL7".into() }
        }
    }
}

fn msg(id: &str) -> Vec<u8> {
    encode_frame(format!("MSH|^~\\&|MON|GW|KETA|CLINIC|20261207101500||ORU^R01|{id}|P|2.6\r").as_bytes())
}

async fn start(config: ListenerConfig) -> (std::net::SocketAddr, Arc<Counting>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = Arc::new(Counting::default());
    tokio::spawn(serve(l, config, h.clone(), Arc::new(ListenerStats::default())));
    (addr, h)
}

async fn read_acks(s: &mut TcpStream, n: usize) -> Vec<(AckCode, String)> {
    let mut out = Vec::new();
    let mut d = keta_mllp::FrameDecoder::new(1 << 20);
    let mut ev = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < n {
        let k = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("ack in time").unwrap();
        assert!(k > 0, "connection closed before {n} ACKs");
        d.push(&buf[..k], &mut ev);
        for e in ev.drain(..) {
            if let keta_mllp::FrameEvent::Frame(f) = e {
                out.push(read_ack(&String::from_utf8_lossy(&f)).expect("an ACK"));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_frame_gets_its_ack_whatever_the_pieces() {
    let (addr, h) = start(ListenerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut bytes = b"noise before".to_vec();
    bytes.extend(msg("A1"));
    bytes.extend(encode_frame(b"not hl7 at all"));
    bytes.extend(msg("A2"));
    for chunk in bytes.chunks(5) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let acks = read_acks(&mut s, 3).await;
    assert_eq!(
        acks,
        vec![(AckCode::Accept, "A1".into()), (AckCode::Reject, String::new()), (AckCode::Accept, "A2".into())]
    );
    assert_eq!(h.seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_stuck_sender_does_not_hold_up_another_connection() {
    let (addr, _) = start(ListenerConfig::default()).await;
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck.write_all(&[0x0B, b'M', b'S', b'H']).await.unwrap(); // and never finishes
    let mut other = TcpStream::connect(addr).await.unwrap();
    other.write_all(&msg("B1")).await.unwrap();
    assert_eq!(read_acks(&mut other, 1).await, vec![(AckCode::Accept, "B1".into())]);
}

#[tokio::test]
async fn an_oversized_frame_is_refused_by_name_and_the_connection_goes_on() {
    let cfg = ListenerConfig { max_frame_bytes: 200, ..Default::default() };
    let (addr, _) = start(cfg).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut big = b"MSH|^~\\&|MON|GW|KETA|CLINIC|20261207101500||ORU^R01|BIG|P|2.6\r".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    s.write_all(&encode_frame(&big)).await.unwrap();
    s.write_all(&msg("C2")).await.unwrap();
    assert_eq!(read_acks(&mut s, 2).await, vec![(AckCode::Reject, "BIG".into()), (AckCode::Accept, "C2".into())]);
}

#[tokio::test]
async fn a_frame_too_slow_to_finish_closes_its_connection() {
    let cfg = ListenerConfig { frame_timeout: Duration::from_millis(200), ..Default::default() };
    let (addr, h) = start(cfg).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x0B, b'M']).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0, "closed without an ACK");
    assert_eq!(h.seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_peer_outside_the_allowed_list_is_closed() {
    let cfg = ListenerConfig { allowed_peers: vec!["10.9.9.9".parse().unwrap()], ..Default::default() };
    let (addr, h) = start(cfg).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&msg("D1")).await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(h.seen.load(Ordering::SeqCst), 0);
}
