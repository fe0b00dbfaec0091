//! Peer protocol tests.

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::{EntryPayload, LogId};
use tokio::io::AsyncWriteExt;

use super::*;
use crate::raft::types::{Entry, Request};

const MAX: usize = 1 << 20;

fn vote() -> Vote {
    Vote::new_committed(3, 1)
}

fn log_id(index: u64) -> super::super::types::LogId {
    LogId::new(LeaderId { term: 3, node_id: 1 }, index)
}

fn head(len: usize) -> ChunkHead {
    ChunkHead { total_len: 1_000_000, crc32c: 7, offset: 4_000, done: len == 0 }
}

fn meta() -> SnapshotMeta {
    SnapshotMeta { last_log_id: Some(log_id(9)), last_membership: Default::default() }
}

fn roundtrip<T: Serialize + DeserializeOwned>(v: &T) -> T {
    let frame = encode_frame(v, MAX).expect("encode");
    let (payload, used) = split_frame(&frame, MAX).expect("split").expect("complete");
    assert_eq!(used, frame.len());
    decode_payload(payload).expect("decode")
}

/// The header is the big-endian payload length and the payload decodes back.
#[test]
fn frame_roundtrip() {
    let frame = encode_frame(&HelloReply::Ok, MAX).expect("encode");
    let len = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, frame.len() - FRAME_HEADER_BYTES);
    assert_eq!(roundtrip(&HelloReply::Refused { reason: "x".into() }), HelloReply::Refused { reason: "x".into() });
    let hello = Hello::new(7);
    assert_eq!(roundtrip(&hello), hello);
}

/// A partial header or body is "incomplete", never an error; two frames split one by one.
#[test]
fn partial_frames_are_incomplete() {
    let a = encode_frame(&PeerResponse::App(vec![1, 2, 3]), MAX).expect("encode");
    let b = encode_frame(&PeerResponse::Error("e".into()), MAX).expect("encode");
    for cut in 0..a.len() {
        assert!(split_frame(&a[..cut], MAX).expect("no error").is_none(), "cut at {cut}");
    }
    let both = [a.clone(), b.clone()].concat();
    let (p, used) = split_frame(&both, MAX).expect("ok").expect("first");
    assert_eq!(used, a.len());
    assert!(matches!(decode_payload::<PeerResponse>(p), Ok(PeerResponse::App(v)) if v == [1, 2, 3]));
    let (p, used) = split_frame(&both[used..], MAX).expect("ok").expect("second");
    assert_eq!(used, b.len());
    assert!(matches!(decode_payload::<PeerResponse>(p), Ok(PeerResponse::Error(_))));
}

/// An oversized header is refused from the 4 header bytes alone, on both ends.
#[test]
fn oversize_is_refused() {
    assert!(matches!(frame_len(u32::MAX.to_be_bytes(), MAX), Err(FrameError::Oversize { .. })));
    assert!(matches!(frame_len((MAX as u32).to_be_bytes(), MAX), Ok(n) if n == MAX));
    assert!(matches!(split_frame(&(MAX as u32 + 1).to_be_bytes(), MAX), Err(FrameError::Oversize { .. })));
    let big = PeerRequest::App(vec![0; 100]);
    assert!(matches!(encode_frame(&big, 50), Err(FrameError::Oversize { .. })));
    assert!(matches!(OutFrame::snapshot_chunk(&vote(), &meta(), &head(1), vec![0; 100], 50), Err(FrameError::Oversize { .. })));
}

/// Garbage and trailing bytes are decode errors, not panics.
#[test]
fn garbage_is_a_decode_error() {
    for garbage in [&[][..], &[0xff; 16][..], &[9, 1, 2][..], b"*1\r\n$4\r\nPING\r\n"] {
        assert!(decode_payload::<PeerRequest>(garbage).is_err(), "{garbage:?}");
        assert!(decode_payload::<Hello>(garbage).is_err(), "{garbage:?}");
        assert!(decode_request(garbage.to_vec()).is_err(), "{garbage:?}");
    }
    let mut ok = postcard::to_allocvec(&HelloReply::Ok).expect("encode");
    ok.push(0);
    assert!(matches!(decode_payload::<HelloReply>(&ok), Err(FrameError::Decode(_))));
    // Snapshot variant whose data length disagrees with the frame.
    let frame = OutFrame::snapshot_chunk(&vote(), &meta(), &head(3), vec![1, 2, 3], MAX).expect("encode");
    let mut payload = [&frame.head[FRAME_HEADER_BYTES..], &frame.body[..]].concat();
    payload.pop();
    assert!(matches!(decode_request(payload), Err(FrameError::Decode(_))));
}

/// The hand-built snapshot chunk frame is exactly serde's encoding, and the fast decode
/// path gives back the same request.
#[test]
fn snapshot_chunk_frame_matches_serde() {
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let h = head(data.len());
    let out = OutFrame::snapshot_chunk(&vote(), &meta(), &h, data.clone(), MAX).expect("encode");
    let req = PeerRequest::SnapshotChunk { vote: vote(), meta: meta(), head: h, data: data.clone() };
    let via_serde = encode_frame(&req, MAX).expect("encode");
    assert_eq!([&out.head[..], &out.body[..]].concat(), via_serde);
    assert_eq!(out.len_bytes(), via_serde.len());
    let req = decode_request(via_serde[FRAME_HEADER_BYTES..].to_vec()).expect("decode");
    let PeerRequest::SnapshotChunk { vote: v, meta: m, head: hd, data: d } = req else {
        panic!("not a snapshot chunk: {req:?}")
    };
    assert_eq!((v, m, hd, d), (vote(), meta(), h, data));
}

/// Every openraft message survives postcard (a positional format: no skipped fields).
#[test]
fn raft_messages_roundtrip() {
    let entry: Entry =
        openraft::Entry { log_id: log_id(5), payload: EntryPayload::Normal(Request(Bytes::from_static(b"op"))) };
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: vote(),
        prev_log_id: Some(log_id(4)),
        entries: vec![entry.clone(), openraft::Entry { log_id: log_id(6), payload: EntryPayload::Blank }],
        leader_commit: Some(log_id(3)),
    };
    let PeerRequest::Append(back) = roundtrip(&PeerRequest::Append(append)) else { panic!("variant") };
    assert_eq!(back.entries, vec![entry, openraft::Entry { log_id: log_id(6), payload: EntryPayload::Blank }]);
    assert_eq!((back.vote, back.prev_log_id, back.leader_commit), (vote(), Some(log_id(4)), Some(log_id(3))));

    let mut vr = VoteRequest::<TypeConfig>::new(Vote::new(4, 2), Some(log_id(8)));
    vr.leadership_transfer = true;
    let PeerRequest::PreVote(back) = roundtrip(&PeerRequest::PreVote(vr.clone())) else { panic!("variant") };
    assert_eq!(back, vr);
    let tl = TransferLeaderRequest::<TypeConfig>::new(vote(), 2, Some(log_id(9)));
    let PeerRequest::TransferLeader(back) = roundtrip(&PeerRequest::TransferLeader(tl.clone())) else { panic!() };
    assert_eq!(back, tl);

    let resp = PeerResponse::Append(Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(5)))));
    assert!(
        matches!(roundtrip(&resp), PeerResponse::Append(Ok(AppendEntriesResponse::PartialSuccess(Some(l)))) if l == log_id(5))
    );
    let resp = PeerResponse::Vote(Ok(VoteResponse::new(vote(), Some(log_id(2)), true)));
    assert!(
        matches!(roundtrip(&resp), PeerResponse::Vote(Ok(v)) if v == VoteResponse::new(vote(), Some(log_id(2)), true))
    );
    let resp = PeerResponse::SnapshotChunk(Ok(ChunkReply::Installed(SnapshotResponse::new(vote()))));
    let installed = ChunkReply::Installed(SnapshotResponse::new(vote()));
    assert!(matches!(roundtrip(&resp), PeerResponse::SnapshotChunk(Ok(s)) if s == installed));
    let resp = PeerResponse::SnapshotChunk(Ok(ChunkReply::Have(12)));
    assert!(matches!(roundtrip(&resp), PeerResponse::SnapshotChunk(Ok(ChunkReply::Have(12)))));
    let resp = PeerResponse::TransferLeader(Ok(Ok(())));
    assert!(matches!(roundtrip(&resp), PeerResponse::TransferLeader(Ok(Ok(())))));
    let resp = PeerResponse::Vote(Err("stopped".into()));
    assert!(matches!(roundtrip(&resp), PeerResponse::Vote(Err(e)) if e == "stopped"));
}

/// `read_frame` reassembles a frame sent in pieces and tells clean close, truncation,
/// idleness and stalls apart.
#[tokio::test]
async fn read_frame_over_a_stream() {
    let t = Duration::from_millis(200);
    let frame = encode_frame(&PeerResponse::App(vec![7; 3000]), MAX).expect("encode");

    let (mut a, mut b) = tokio::io::duplex(64);
    let sent = frame.clone();
    let writer = tokio::spawn(async move {
        for piece in sent.chunks(7) {
            a.write_all(piece).await.expect("write");
        }
        a
    });
    let payload = read_frame(&mut b, MAX, t, t).await.expect("frame");
    assert!(matches!(decode_payload::<PeerResponse>(&payload), Ok(PeerResponse::App(v)) if v.len() == 3000));
    drop(writer.await.expect("join"));
    assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Closed)));

    let (mut a, mut b) = tokio::io::duplex(64);
    a.write_all(&frame[..10]).await.expect("write");
    drop(a);
    assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Truncated)));

    let (mut a, mut b) = tokio::io::duplex(64);
    assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Idle(_))));
    a.write_all(&frame[..10]).await.expect("write");
    assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Stalled(_))));

    let (mut a, mut b) = tokio::io::duplex(64);
    a.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    assert!(matches!(read_frame(&mut b, MAX, t, t).await, Err(FrameError::Oversize { .. })));
}
