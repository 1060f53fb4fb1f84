//! The accepting side's checks, driven by a raw `Peer/Stream` client: who may open a
//! stream, that a newer stream replaces an older one, and that bad messages on an
//! accepted stream are dropped and counted without closing it.

use crate::harness::{Cluster, DEADLINE, numbered, wait_until};
use paxlog_broker::convert::peer::{decode_batch, encode_batch, encode_message};
use paxlog_proto::v1::peer_client::PeerClient;
use paxlog_proto::v1::{GroupMessage, PeerBatch};
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

/// A stream opened by hand, announcing `from` in its first batch. Keep the sender to keep
/// the request side open.
struct RawStream {
    requests: mpsc::Sender<PeerBatch>,
    responses: Streaming<PeerBatch>,
}

async fn open(addr: SocketAddr, from: u64) -> Result<RawStream, Status> {
    let mut client = PeerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the node");
    let (requests, rx) = mpsc::channel(16);
    requests
        .send(encode_batch(from, Vec::new()))
        .await
        .expect("queue the hello");
    let responses = client.stream(ReceiverStream::new(rx)).await?.into_inner();
    Ok(RawStream {
        requests,
        responses,
    })
}

impl RawStream {
    async fn next_batch(&mut self) -> Option<PeerBatch> {
        tokio::time::timeout(DEADLINE, self.responses.message())
            .await
            .expect("an answer within the deadline")
            .ok()
            .flatten()
    }
}

fn refusal(result: Result<RawStream, Status>) -> Status {
    match result {
        Ok(_) => panic!("the stream was accepted"),
        Err(status) => status,
    }
}

#[tokio::test]
async fn streams_from_unknown_or_wrong_nodes_are_refused() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    let two = cluster.start(2).await;
    let addr = cluster.addr(2);

    let status = refusal(open(addr, 9).await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("node 9 is not a peer of node 2"),
        "{status:?}"
    );

    let status = refusal(open(addr, 3).await);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("lower id"), "{status:?}");

    for from in [0, 2] {
        let status = refusal(open(addr, from).await);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "from {from}: {status:?}"
        );
    }

    let mut client = PeerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let status = client
        .stream(tokio_stream::empty::<PeerBatch>())
        .await
        .expect_err("a stream without a first batch");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("ended before its first PeerBatch"),
        "{status:?}"
    );

    assert!(
        two.hub.connected().is_empty(),
        "no refused stream counts as connected"
    );
    let accepted = open(addr, 1)
        .await
        .expect("node 1 may open a stream to node 2");
    wait_until("node 2 accepted node 1", || two.hub.connected() == [1]).await;
    drop(accepted);
    two.stop().await;
}

#[tokio::test]
async fn a_newer_stream_from_a_peer_replaces_the_older_one() {
    let mut cluster = Cluster::new(&[1, 2]);
    let two = cluster.start(2).await;
    let addr = cluster.addr(2);

    let mut first = open(addr, 1).await.expect("accepted");
    wait_until("node 2 accepted node 1", || two.hub.connected() == [1]).await;
    let (group, message) = numbered(2, 1, 0);
    two.hub.send(group, message.clone());
    let batch = first
        .next_batch()
        .await
        .expect("a batch on the first stream");
    let decoded: Vec<_> = decode_batch(batch).collect();
    assert_eq!(decoded, [Ok((group, message))]);

    let mut second = open(addr, 1).await.expect("accepted");
    assert!(
        first.next_batch().await.is_none(),
        "the older stream is closed"
    );
    let (group, message) = numbered(2, 1, 1);
    two.hub.send(group, message.clone());
    let batch = second
        .next_batch()
        .await
        .expect("a batch on the newer stream");
    let decoded: Vec<_> = decode_batch(batch).collect();
    assert_eq!(decoded, [Ok((group, message))]);
    assert_eq!(two.peer_metric("paxlog_peer_reconnects_total", 1), 1);
    assert_eq!(two.hub.connected(), [1]);
    drop(second);
    two.stop().await;
}

#[tokio::test]
async fn bad_messages_are_dropped_and_counted_and_a_lying_sender_is_cut_off() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    let mut two = cluster.start(2).await;
    let mut stream = open(cluster.addr(2), 1).await.expect("accepted");

    let (group, good) = numbered(1, 2, 7);
    let (_, for_three) = numbered(1, 3, 8);
    let malformed = GroupMessage {
        group: 1,
        to: 2,
        body: None,
    };
    let batch = encode_batch(
        1,
        vec![
            malformed,
            encode_message(0, for_three),
            encode_message(group, good.clone()),
        ],
    );
    stream.requests.send(batch).await.expect("send");
    let received = two.recv(1).await;
    assert_eq!((received[0].group, &received[0].message), (group, &good));
    assert_eq!(two.dropped(1, "malformed"), 1);
    assert_eq!(two.dropped(1, "misaddressed"), 1);
    assert_eq!(two.peer_metric("paxlog_peer_messages_received_total", 1), 1);
    assert_eq!(
        two.hub.connected(),
        [1],
        "bad messages do not close the stream"
    );

    // A batch claiming another sender ends the stream.
    let (group, message) = numbered(3, 2, 0);
    let lie = encode_batch(3, vec![encode_message(group, message)]);
    stream.requests.send(lie).await.expect("send");
    assert!(stream.next_batch().await.is_none(), "the stream is closed");
    wait_until("node 2 dropped the stream", || {
        two.hub.connected().is_empty()
    })
    .await;
    two.assert_no_more();
    two.stop().await;
}
