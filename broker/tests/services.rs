//! What the gRPC port offers: reflection lists every service; errors carry a status with a
//! helpful message and a `paxlog.v1.Error` in the details; the Groups service answers.

mod common;

use common::BrokerProcess;
use paxlog_proto::v1::{
    ListGroupsRequest, PublishRequest, groups_client::GroupsClient, producer_client::ProducerClient,
};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn reflection_lists_services_and_errors_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::start(1, &dir.path().join("node-1"), dir.path());
    broker.wait_serving().await;
    let url = format!("http://{}", broker.grpc);

    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .expect("valid url")
        .connect()
        .await
        .expect("connect");
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("reflection answer")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "grpc.health.v1.Health",
        "paxlog.v1.Producer",
        "paxlog.v1.Peer",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // A publish to a topic that does not exist says so, with the stable code in details.
    let mut producer = ProducerClient::connect(url.clone()).await.expect("connect");
    let status = producer
        .publish(PublishRequest {
            topic: "t".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("topic t does not exist");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("unknown topic \"t\""),
        "{}",
        status.message()
    );
    let detail: paxlog_proto::v1::Error =
        prost::Message::decode(status.details()).expect("paxlog.v1.Error in details");
    assert_eq!(
        detail.code,
        paxlog_proto::v1::ErrorCode::UnknownTopic as i32
    );

    // Groups answer: a broker with no groups lists none; a bad group name is refused.
    let mut groups = GroupsClient::connect(url).await.expect("connect");
    let listed = groups
        .list_groups(ListGroupsRequest::default())
        .await
        .expect("list groups")
        .into_inner();
    assert!(listed.groups.is_empty(), "{listed:?}");
    let status = groups
        .describe_group(paxlog_proto::v1::DescribeGroupRequest {
            group: "no/slashes".into(),
        })
        .await
        .expect_err("invalid group name");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("invalid group name"),
        "{}",
        status.message()
    );

    assert!(broker.terminate().await.success(), "{}", broker.log());
}
