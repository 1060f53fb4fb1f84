use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flags_with_id(id: NodeId) -> ConfigPatch {
    ConfigPatch {
        id: Some(id),
        ..ConfigPatch::default()
    }
}

#[test]
fn defaults_need_only_an_id() {
    let config = Config::load(None, env(&[]), flags_with_id(1)).expect("ok");
    assert_eq!(config.listen, DEFAULT_LISTEN);
    assert_eq!(config.data_dir(), PathBuf::from("./data/node-1"));
    assert_eq!(
        config.metrics_addr().expect("ok"),
        "127.0.0.1:9001".parse().expect("valid address")
    );
    assert_eq!(config.max_record_bytes, DEFAULT_MAX_RECORD_BYTES);
    assert_eq!(
        config.members(),
        BTreeMap::from([(1, "127.0.0.1:7001".to_owned())])
    );
}

#[test]
fn missing_or_zero_id_is_rejected() {
    let err = Config::load(None, env(&[]), ConfigPatch::default()).expect_err("must be rejected");
    assert!(matches!(err, ConfigError::MissingId), "{err}");
    assert!(err.to_string().contains("--id"), "{err}");
    let err = Config::load(None, env(&[]), flags_with_id(0)).expect_err("must be rejected");
    assert!(matches!(err, ConfigError::MissingId), "{err}");
}

#[test]
fn metrics_port_follows_listen_port() {
    let flags = ConfigPatch {
        listen: Some("127.0.0.1:7003".parse().expect("valid address")),
        ..flags_with_id(3)
    };
    let config = Config::load(None, env(&[]), flags).expect("ok");
    assert_eq!(
        config.metrics_addr().expect("ok"),
        "127.0.0.1:9003".parse().expect("valid address")
    );

    let flags = ConfigPatch {
        listen: Some("127.0.0.1:65000".parse().expect("valid address")),
        ..flags_with_id(3)
    };
    let err = Config::load(None, env(&[]), flags).expect_err("must be rejected");
    assert!(
        matches!(err, ConfigError::NoDefaultMetricsPort(65000)),
        "{err}"
    );
}

#[test]
fn flags_override_env_which_overrides_file() {
    let dir = tempfile::tempdir().expect("ok");
    let file = dir.path().join("broker.toml");
    std::fs::write(
        &file,
        "id = 1\nlisten = \"127.0.0.1:8001\"\nmax_record_bytes = 10\n[peers]\n1 = \"a:1\"\n2 = \"b:2\"\n",
    )
    .expect("ok");
    let vars = env(&[
        ("PAXLOG_ID", "2"),
        ("PAXLOG_MAX_RECORD_BYTES", "20"),
        ("HOME", "/x"),
    ]);
    let flags = ConfigPatch {
        max_record_bytes: Some(30),
        ..ConfigPatch::default()
    };
    let config = Config::load(Some(&file), vars, flags).expect("ok");
    assert_eq!(config.id, 2, "env beats file");
    assert_eq!(config.max_record_bytes, 30, "flag beats env");
    assert_eq!(
        config.listen,
        "127.0.0.1:8001".parse().expect("valid address"),
        "file beats default"
    );
    assert_eq!(config.peers.len(), 2);
}

#[test]
fn unknown_file_key_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("ok");
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, "id = 1\nlisten_addr = \"127.0.0.1:1\"\n").expect("ok");
    let err =
        Config::load(Some(&file), env(&[]), ConfigPatch::default()).expect_err("must be rejected");
    let text = err.to_string();
    assert!(
        text.contains("broker.toml") && text.contains("listen_addr"),
        "{text}"
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let err = Config::load(None, env(&[("PAXLOG_LISTEN", "nowhere")]), flags_with_id(1))
        .expect_err("must be rejected");
    assert!(err.to_string().contains("PAXLOG_LISTEN"), "{err}");
}

#[test]
fn peers_parse_with_spaces_ipv6_and_names() {
    let peers = parse_peers(" 1=127.0.0.1:7001, 2=[::1]:7002 ,3=node-3.local:7003").expect("ok");
    assert_eq!(peers[&1], "127.0.0.1:7001");
    assert_eq!(peers[&2], "[::1]:7002");
    assert_eq!(peers[&3], "node-3.local:7003");
    assert!(parse_peers("").expect("ok").is_empty());
}

#[test]
fn garbage_peers_are_rejected_with_the_reason() {
    for (input, reason) in [
        ("1=a:1,1=b:2", "listed twice"),
        ("1=a:1,2=a:1", "listed for both"),
        ("0=a:1", "reserved"),
        ("x=a:1", "not a positive integer"),
        ("1:a:1", "no '='"),
        ("1=a", "no port"),
        ("1=a:0", "invalid port"),
        ("1=a:99999", "invalid port"),
        ("1=::1:7001", "invalid host"),
        ("1=a:1,,2=b:2", "no '='"),
    ] {
        let err = parse_peers(input)
            .expect_err("must be rejected")
            .to_string();
        assert!(err.contains(reason), "{input}: {err}");
        assert!(err.contains("e.g. 1=127.0.0.1:7001"), "{input}: {err}");
    }
}

#[test]
fn peers_must_include_self() {
    let flags = ConfigPatch {
        peers: Some(parse_peers("1=a:1,2=b:2").expect("ok")),
        ..flags_with_id(3)
    };
    let err = Config::load(None, env(&[]), flags).expect_err("must be rejected");
    assert!(
        matches!(err, ConfigError::SelfNotInPeers { id: 3, .. }),
        "{err}"
    );
}

#[test]
fn record_size_bounds() {
    for bad in [0, MAX_RECORD_BYTES_LIMIT + 1] {
        let flags = ConfigPatch {
            max_record_bytes: Some(bad),
            ..flags_with_id(1)
        };
        let err = Config::load(None, env(&[]), flags).expect_err("must be rejected");
        assert!(matches!(err, ConfigError::MaxRecordBytes(_)), "{err}");
    }
}

#[test]
fn metrics_may_not_share_the_listen_address() {
    let flags = ConfigPatch {
        metrics: Some(DEFAULT_LISTEN),
        ..flags_with_id(1)
    };
    let err = Config::load(None, env(&[]), flags).expect_err("must be rejected");
    assert!(
        matches!(err, ConfigError::MetricsCollidesWithListen(_)),
        "{err}"
    );
}

#[test]
fn the_inflight_budget_must_hold_a_largest_record() {
    let flags = ConfigPatch {
        max_record_bytes: Some(1 << 20),
        max_inflight_bytes: Some((1 << 20) - 1),
        ..flags_with_id(1)
    };
    let err = Config::load(None, env(&[]), flags).expect_err("must be rejected");
    assert!(matches!(err, ConfigError::MaxInflightBytes { .. }), "{err}");
    assert!(
        err.to_string().contains("raise max_inflight_bytes"),
        "{err}"
    );
    let vars = env(&[("PAXLOG_MAX_INFLIGHT_BYTES", "2097152")]);
    let config = Config::load(None, vars, flags_with_id(1)).expect("ok");
    assert_eq!(config.max_inflight_bytes, 2 << 20);
    assert_eq!(
        Config::load(None, env(&[]), flags_with_id(1))
            .expect("ok")
            .max_inflight_bytes,
        DEFAULT_MAX_INFLIGHT_BYTES
    );
}

#[test]
fn tls_files_come_together_from_any_source_and_auth_needs_them() {
    let err = Config::load(
        None,
        env(&[("PAXLOG_TLS_CERT", "node.pem")]),
        flags_with_id(1),
    )
    .expect_err("cert alone");
    assert!(matches!(err, ConfigError::TlsIncomplete(_)), "{err}");
    assert!(
        err.to_string().contains("missing: --tls-key, --tls-ca"),
        "{err}"
    );

    let file = ConfigPatch::from_toml("[tls]\ncert = \"node.pem\"\nkey = \"node.key\"\n")
        .expect("valid toml");
    let mut config = Config {
        id: 1,
        ..Config::default()
    };
    config.apply(file);
    config.apply(ConfigPatch {
        tls_ca: Some(PathBuf::from("ca.pem")),
        ..ConfigPatch::default()
    });
    config
        .validate()
        .expect("file and flag together make TLS whole");
    assert_eq!(
        config.tls_files().expect("whole"),
        Some(TlsFiles {
            cert: "node.pem".into(),
            key: "node.key".into(),
            ca: "ca.pem".into(),
        })
    );

    let err = Config::load(
        None,
        env(&[("PAXLOG_AUTH_FILE", "tokens.toml")]),
        flags_with_id(1),
    )
    .expect_err("auth without TLS");
    assert!(matches!(err, ConfigError::AuthWithoutTls), "{err}");
    assert!(err.to_string().contains("in clear"), "{err}");
    let err = ConfigPatch::from_toml("[tls]\ncertificate = \"x\"").expect_err("unknown key");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn request_limit_holds_a_largest_record_and_connection_limits_are_positive() {
    let config = Config::load(None, env(&[]), flags_with_id(1)).expect("defaults");
    assert_eq!(config.request_limit(), DEFAULT_MAX_REQUEST_BYTES);
    // A larger max_record_bytes raises the default request limit with it.
    let config = Config::load(
        None,
        env(&[("PAXLOG_MAX_RECORD_BYTES", "33554432")]),
        flags_with_id(1),
    )
    .expect("large records");
    assert_eq!(config.request_limit(), (32 << 20) + REQUEST_OVERHEAD_BYTES);
    let err = Config::load(
        None,
        env(&[
            ("PAXLOG_MAX_RECORD_BYTES", "2097152"),
            ("PAXLOG_MAX_REQUEST_BYTES", "2097152"),
        ]),
        flags_with_id(1),
    )
    .expect_err("a request limit that cannot hold a largest record");
    assert!(matches!(err, ConfigError::MaxRequestBytes { .. }), "{err}");
    assert!(err.to_string().contains("2162688"), "{err}");
    for var in ["PAXLOG_MAX_CONNECTIONS", "PAXLOG_MAX_CONNECTIONS_PER_IP"] {
        let err = Config::load(None, env(&[(var, "0")]), flags_with_id(1)).expect_err(var);
        assert!(matches!(err, ConfigError::ZeroConnections(_)), "{err}");
    }
}

#[test]
fn a_partition_gets_a_quarter_of_the_inflight_budget_unless_told_and_within_range() {
    let config = Config::load(None, env(&[]), flags_with_id(1)).expect("defaults");
    assert_eq!(
        config.partition_inflight_limit(),
        DEFAULT_MAX_INFLIGHT_BYTES / 4
    );
    let config = Config::load(
        None,
        env(&[
            ("PAXLOG_MAX_RECORD_BYTES", "1048576"),
            ("PAXLOG_MAX_INFLIGHT_BYTES", "2097152"),
        ]),
        flags_with_id(1),
    )
    .expect("small budget");
    assert_eq!(
        config.partition_inflight_limit(),
        1 << 20,
        "at least a largest record"
    );
    let err = Config::load(
        None,
        env(&[("PAXLOG_MAX_INFLIGHT_BYTES_PER_PARTITION", "1073741824")]),
        flags_with_id(1),
    )
    .expect_err("more than the node's budget");
    assert!(
        matches!(err, ConfigError::PartitionInflightBytes { .. }),
        "{err}"
    );
}
