//! TLS, mutual TLS between brokers and token permissions, on real broker processes.
//!
//! The cluster forming at all (a topic created, a publish acknowledged by a majority) is
//! the proof that the brokers reach each other over mutual TLS: they run nothing else.

use super::harness::Cluster;
use paxlog_client::cli::topic::CreateTopic;
use paxlog_client::connection::{ConnectOptions, Connection};
use paxlog_client::health::{self, Health};
use paxlog_client::security::{IssuedCert, LocalCa, sha256_hex};
use paxlog_client::{
    Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Security,
};
use paxlog_proto::v1 as pb;
use pb::{
    admin_client::AdminClient, consumer_client::ConsumerClient, metadata_client::MetadataClient,
    peer_client::PeerClient, producer_client::ProducerClient,
};
use std::path::Path;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-secret";
const WRITER: &str = "writer-secret";
const READER: &str = "reader-secret";

/// Writes the CA, one broker certificate and an auth file of three tokens into `dir`;
/// returns the `PAXLOG_*` settings of the brokers.
fn secure_settings(dir: &Path, ca: &LocalCa, broker: &IssuedCert) -> Vec<(String, String)> {
    let auth = format!(
        r#"
        [[tokens]]
        name = "admin"
        sha256 = "{}"
        allow = ["*"]

        [[tokens]]
        name = "writer"
        token = "{WRITER}"
        allow = ["produce:orders"]

        [[tokens]]
        name = "reader"
        sha256 = "{}"
        allow = ["consume:orders*"]
        "#,
        sha256_hex(ADMIN),
        sha256_hex(READER)
    );
    let files = [
        ("ca.pem", ca.cert_pem()),
        ("broker.pem", broker.cert_pem.clone()),
        ("broker.key", broker.key_pem.clone()),
        ("auth.toml", auth),
    ];
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).expect("write security file");
    }
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        ("PAXLOG_TLS_CERT".into(), path("broker.pem")),
        ("PAXLOG_TLS_KEY".into(), path("broker.key")),
        ("PAXLOG_TLS_CA".into(), path("ca.pem")),
        ("PAXLOG_AUTH_FILE".into(), path("auth.toml")),
    ]
}

fn trusting(ca: &LocalCa) -> Security {
    Security {
        ca_pem: Some(ca.cert_pem().into_bytes()),
        ..Security::none()
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(15),
        ..ConnectOptions::default()
    }
}

/// A channel to `addr` with `security` (TLS and token as given).
fn channel(addr: &str, security: Security) -> paxlog_client::connection::BrokerChannel {
    Connection::secured(vec![addr.to_owned()], options(), security)
        .expect("connection")
        .channel(addr)
        .expect("channel")
}

fn publish_request(topic: &str) -> pb::PublishRequest {
    pb::PublishRequest {
        topic: topic.to_owned(),
        partition: Some(0),
        records: vec![super::harness::record("k", "v")],
        ..Default::default()
    }
}

fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    says: &str,
) {
    let status = result.expect_err("the call must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_permissions_guard_every_client_call_over_mutual_tls() {
    let files = tempfile::tempdir().expect("tempdir");
    let ca = LocalCa::new("test cluster CA").expect("ca");
    let broker = ca
        .issue("paxlog-broker", &["127.0.0.1", "localhost"])
        .expect("cert");
    let settings = secure_settings(files.path(), &ca, &broker);
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let c = Cluster::start_secured(3, &settings, trusting(&ca)).await;
    let seeds: Vec<String> = (1..=3).map(|id| c.addr(id).to_string()).collect();
    let addr = seeds[0].clone();
    let as_user = |token: &str| trusting(&ca).with_token(token);
    let deadline = Duration::from_secs(60);

    // The admin creates topics: the metadata group decides over mutual TLS.
    let admin = Client::connect_secured(seeds.clone(), options(), as_user(ADMIN), deadline)
        .await
        .expect("admin connects");
    for name in ["orders", "payments"] {
        admin
            .admin()
            .create_topic(CreateTopic {
                name: name.to_owned(),
                partitions: 1,
                replication: 3,
                config: Default::default(),
            })
            .await
            .expect("admin creates a topic");
    }

    // The writer publishes to orders; a majority acknowledged it over mutual TLS.
    let writer = Client::connect_secured(seeds.clone(), options(), as_user(WRITER), deadline)
        .await
        .expect("writer connects");
    let producer = writer
        .producer(ProducerConfig::default())
        .expect("producer");
    let delivered = producer
        .send_and_wait(ProducerRecord::new("orders", "paid").key("order-1"))
        .await
        .expect("writer may produce to orders");
    assert_eq!(delivered.offset, Some(0));

    // What the writer may not do: each refused with PERMISSION_DENIED saying what to add.
    let mut producer_rpc = ProducerClient::new(channel(&addr, as_user(WRITER)));
    assert_status(
        producer_rpc.publish(publish_request("payments")).await,
        tonic::Code::PermissionDenied,
        "\"produce:payments\"",
    );
    let fetch = pb::FetchRequest {
        topic: "orders".to_owned(),
        ..Default::default()
    };
    let mut consumer_rpc = ConsumerClient::new(channel(&addr, as_user(WRITER)));
    assert_status(
        consumer_rpc.fetch(fetch.clone()).await,
        tonic::Code::PermissionDenied,
        "\"consume:orders\"",
    );
    let mut admin_rpc = AdminClient::new(channel(&addr, as_user(WRITER)));
    let create = pb::CreateTopicRequest {
        name: "audit".to_owned(),
        partitions: 1,
        ..Default::default()
    };
    assert_status(
        admin_rpc.create_topic(create).await,
        tonic::Code::PermissionDenied,
        "may not administer topic \"audit\"",
    );

    // The reader reads what the writer wrote, through the SDK (routing, fetch from leader).
    let reader = Client::connect_secured(seeds.clone(), options(), as_user(READER), deadline)
        .await
        .expect("reader connects");
    let mut consumer = reader.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    consumer.assign("orders", [0]);
    let started = Instant::now();
    let records = loop {
        let records = consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("reader may consume");
        if !records.is_empty() {
            break records;
        }
        assert!(started.elapsed() < deadline, "the reader saw nothing");
    };
    assert_eq!(records[0].value.as_ref(), b"paid");
    let mut reader_rpc = ProducerClient::new(channel(&addr, as_user(READER)));
    assert_status(
        reader_rpc.publish(publish_request("orders")).await,
        tonic::Code::PermissionDenied,
        "token \"reader\" may not produce to topic \"orders\"",
    );

    // No token, a wrong token: UNAUTHENTICATED, on every client service.
    for (security, says) in [
        (trusting(&ca), "requires a token"),
        (as_user("guess"), "not known to this broker"),
    ] {
        let mut metadata = MetadataClient::new(channel(&addr, security.clone()));
        assert_status(
            metadata
                .get_metadata(pb::GetMetadataRequest::default())
                .await,
            tonic::Code::Unauthenticated,
            says,
        );
        let mut producer = ProducerClient::new(channel(&addr, security));
        assert_status(
            producer.publish(publish_request("orders")).await,
            tonic::Code::Unauthenticated,
            says,
        );
    }

    // Health needs no token (load balancers and Kubernetes probes call it).
    assert_eq!(
        health::check_secured(&addr, Duration::from_secs(5), &trusting(&ca)).await,
        Health::Serving
    );

    // Plain text to a TLS port, or TLS trusting another CA: no connection at all.
    let plain = health::check_secured(&addr, Duration::from_secs(5), &Security::none()).await;
    assert!(matches!(plain, Health::Unreachable(_)), "{plain:?}");
    let stranger = LocalCa::new("someone else's CA").expect("ca");
    match health::check_secured(&addr, Duration::from_secs(5), &trusting(&stranger)).await {
        Health::Unreachable(why) => assert!(why.contains("UnknownIssuer"), "{why}"),
        other => panic!("a client trusting another CA connected: {other:?}"),
    }

    // The peer API: without a client certificate the stream is refused; with a certificate
    // from another CA the TLS handshake is.
    let hello = pb::PeerBatch {
        from_node: 1,
        ..Default::default()
    };
    let mut peer = PeerClient::new(channel(&addr, trusting(&ca)));
    assert_status(
        peer.stream(tokio_stream::iter(vec![hello.clone()])).await,
        tonic::Code::Unauthenticated,
        "mutual TLS",
    );
    let impostor = stranger.issue("impostor", &["127.0.0.1"]).expect("cert");
    let as_impostor = Security {
        identity: Some((
            impostor.cert_pem.into_bytes(),
            impostor.key_pem.into_bytes(),
        )),
        ..trusting(&ca)
    };
    let mut peer = PeerClient::new(channel(&addr, as_impostor));
    let refused = peer
        .stream(tokio_stream::iter(vec![hello]))
        .await
        .expect_err("a certificate of another CA must not open a peer stream");
    assert_ne!(refused.code(), tonic::Code::Ok, "{refused:?}");

    // The writer's record is still the only one: nothing refused was stored.
    let mut consumer = reader.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    consumer.assign("orders", [0]);
    let again = consumer
        .poll(Duration::from_millis(500))
        .await
        .expect("poll");
    assert_eq!(again.len(), 1, "{again:?}");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refuse_an_expired_broker_certificate() {
    let files = tempfile::tempdir().expect("tempdir");
    let ca = LocalCa::new("test cluster CA").expect("ca");
    let expired = ca
        .issue_expired("paxlog-broker", &["127.0.0.1"])
        .expect("cert");
    let settings = secure_settings(files.path(), &ca, &expired);
    let mut settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    settings.retain(|(k, _)| *k != "PAXLOG_AUTH_FILE");
    let config = paxlog_broker::Config::load(
        None,
        settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        paxlog_broker::ConfigPatch {
            id: Some(1),
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            metrics: Some("127.0.0.1:0".parse().expect("addr")),
            data_dir: Some(files.path().join("node-1")),
            ..Default::default()
        },
    )
    .expect("config");
    let listeners = paxlog_broker::Listeners::bind(&config).await.expect("bind");
    let addr = listeners.grpc.local_addr().expect("addr").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(paxlog_broker::run_with_listeners(
        config,
        listeners,
        async {
            let _ = stopped.await;
        },
    ));
    // The node serves (rustls does not judge its own certificate); every client refuses
    // it. Polled: the first attempts may find the port not yet answering.
    let deadline = Instant::now() + Duration::from_secs(60);
    let why = loop {
        match health::check_secured(&addr, Duration::from_secs(5), &trusting(&ca)).await {
            Health::Unreachable(why) if why.contains("certificate expired") => break why,
            Health::Serving => panic!("a client accepted an expired certificate"),
            other => assert!(
                Instant::now() < deadline,
                "never refused as expired: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(why.contains("invalid peer certificate"), "{why}");
    let _ = stop.send(());
    node.await.expect("join").expect("the node stops cleanly");
}

/// `paxlog_broker::run`'s error for a node with these `PAXLOG_*` settings; it must not
/// start.
async fn start_error(dir: &Path, settings: &[(String, String)]) -> String {
    let config = paxlog_broker::Config::load(
        None,
        settings.iter().cloned(),
        paxlog_broker::ConfigPatch {
            id: Some(1),
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            metrics: Some("127.0.0.1:0".parse().expect("addr")),
            data_dir: Some(dir.join("node-1")),
            ..Default::default()
        },
    )
    .expect("config");
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        paxlog_broker::run(config, std::future::pending()),
    )
    .await
    .expect("a node with unusable security files must stop at once");
    result.expect_err("must not start").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_security_files_stop_the_broker_with_a_message_naming_them() {
    let files = tempfile::tempdir().expect("tempdir");
    let ca = LocalCa::new("test cluster CA").expect("ca");
    let broker = ca.issue("paxlog-broker", &["127.0.0.1"]).expect("cert");
    let other = ca.issue("paxlog-broker", &["127.0.0.1"]).expect("cert");
    let settings = secure_settings(files.path(), &ca, &broker);
    let with = |var: &str, value: String| -> Vec<(String, String)> {
        let mut changed: Vec<(String, String)> =
            settings.iter().filter(|(k, _)| k != var).cloned().collect();
        changed.push((var.to_owned(), value));
        changed
    };

    // The key of another certificate.
    let wrong_key = files.path().join("other.key");
    std::fs::write(&wrong_key, &other.key_pem).expect("write");
    let err = start_error(
        files.path(),
        &with("PAXLOG_TLS_KEY", wrong_key.display().to_string()),
    )
    .await;
    assert!(err.contains("is the private key of --tls-cert"), "{err}");

    // A CA file that is not there, and one that holds no certificate.
    let missing = files.path().join("absent-ca.pem").display().to_string();
    let err = start_error(files.path(), &with("PAXLOG_TLS_CA", missing)).await;
    assert!(
        err.contains("cannot read TLS CA certificate file") && err.contains("absent-ca.pem"),
        "{err}"
    );
    let err = start_error(
        files.path(),
        &with("PAXLOG_TLS_CA", wrong_key.display().to_string()),
    )
    .await;
    assert!(err.contains("holds no PEM certificate"), "{err}");

    // An auth file with a typo.
    let auth = files.path().join("typo.toml");
    std::fs::write(
        &auth,
        "[[tokens]]\nname = \"a\"\ntoken = \"x\"\nallow = [\"publish:orders\"]\n",
    )
    .expect("write");
    let err = start_error(
        files.path(),
        &with("PAXLOG_AUTH_FILE", auth.display().to_string()),
    )
    .await;
    assert!(
        err.contains("typo.toml") && err.contains("unknown action \"publish\""),
        "{err}"
    );
}
