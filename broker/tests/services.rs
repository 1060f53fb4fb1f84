//! What the gRPC port offers in this build: reflection lists every service, and the
//! paxlog.v1 RPCs answer UNIMPLEMENTED with a message saying so.

mod common;

use common::BrokerProcess;
use paxlog_proto::v1::{PublishRequest, producer_client::ProducerClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn reflection_lists_services_and_rpcs_answer_unimplemented() {
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

    let mut producer = ProducerClient::connect(url).await.expect("connect");
    let status = producer
        .publish(PublishRequest {
            topic: "t".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("Publish is not implemented in this build");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("paxlog.v1.Producer/Publish"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("not implemented yet"),
        "{}",
        status.message()
    );

    assert!(broker.terminate().await.success(), "{}", broker.log());
}
