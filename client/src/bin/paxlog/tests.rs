//! Argument parsing of the `paxlog` commands.

use super::*;
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("paxlog").chain(args.iter().copied())).map(|c| c.command)
}

#[test]
fn command_definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn topic_create_takes_partitions_replication_and_config() {
    let command = parse(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--replication",
        "3",
        "--config",
        "retention.ms=1000",
        "--config",
        "retention.bytes=10",
        "--brokers",
        "h:1",
        "--json",
    ])
    .expect("valid");
    let Command::Topic(TopicCommand::Create(args)) = command else {
        panic!("not topic create: {command:?}");
    };
    assert_eq!(
        (args.name.as_str(), args.partitions, args.replication),
        ("orders", 3, Some(3))
    );
    assert_eq!(args.config, ["retention.ms=1000", "retention.bytes=10"]);
    assert_eq!(args.client.brokers, "h:1");
    assert!(args.client.json);
    assert_eq!(args.client.timeout_ms, 30_000);
}

#[test]
fn topic_create_rejects_zero_partitions_and_needs_a_count() {
    let err = parse(&["topic", "create", "t", "--partitions", "0"]).expect_err("zero");
    assert!(err.to_string().contains("--partitions"), "{err}");
    assert!(
        parse(&["topic", "create", "t"]).is_err(),
        "--partitions is required"
    );
}

#[test]
fn topic_subcommands_parse() {
    assert!(matches!(
        parse(&["topic", "list", "--json"]),
        Ok(Command::Topic(TopicCommand::List(ClientArgs {
            json: true,
            ..
        })))
    ));
    assert!(matches!(
        parse(&["topic", "describe", "orders"]),
        Ok(Command::Topic(TopicCommand::Describe(TopicNameArgs { name, .. }))) if name == "orders"
    ));
    assert!(matches!(
        parse(&["topic", "delete", "orders", "--timeout-ms", "5"]),
        Ok(Command::Topic(TopicCommand::Delete(TopicNameArgs {
            client: ClientArgs { timeout_ms: 5, .. },
            ..
        })))
    ));
}

#[test]
fn produce_defaults_and_key_options() {
    let Ok(Command::Produce(args)) = parse(&["produce", "orders"]) else {
        panic!("produce");
    };
    assert_eq!(
        (args.batch, args.linger_ms, args.partition),
        (100, 100, None)
    );
    assert_eq!((args.key, args.key_separator), (None, None));
    if std::env::var_os("PAXLOG_BROKERS").is_none() {
        assert_eq!(args.client.brokers, DEFAULT_BROKERS);
    }
    let Ok(Command::Produce(args)) = parse(&[
        "produce",
        "orders",
        "--key-separator",
        ":",
        "--partition",
        "2",
        "--batch",
        "10",
    ]) else {
        panic!("produce with options");
    };
    assert_eq!(args.key_separator.as_deref(), Some(":"));
    assert_eq!((args.partition, args.batch), (Some(2), 10));
    let both = parse(&["produce", "t", "--key", "k", "--key-separator", ":"]);
    assert!(
        both.is_err(),
        "--key and --key-separator exclude each other"
    );
    assert!(parse(&["produce", "t", "--batch", "0"]).is_err());
}

#[test]
fn consume_start_positions_and_limits() {
    let Ok(Command::Consume(args)) = parse(&["consume", "orders"]) else {
        panic!("consume");
    };
    assert_eq!(args.from, StartFrom::Earliest);
    assert_eq!((args.max, args.follow, args.partition), (None, false, None));
    let Ok(Command::Consume(args)) = parse(&[
        "consume",
        "orders",
        "--from",
        "42",
        "--max",
        "100",
        "--follow",
        "--partition",
        "1",
        "--json",
    ]) else {
        panic!("consume with options");
    };
    assert_eq!(args.from, StartFrom::Offset(42));
    assert_eq!(
        (args.max, args.follow, args.partition),
        (Some(100), true, Some(1))
    );
    assert!(args.client.json);
    let Ok(Command::Consume(args)) = parse(&["consume", "t", "--from", "latest"]) else {
        panic!("latest");
    };
    assert_eq!(args.from, StartFrom::Latest);
    let err = parse(&["consume", "t", "--from", "first"]).expect_err("bad position");
    assert!(
        err.to_string().contains("earliest, latest or an offset"),
        "{err}"
    );
}

#[test]
fn status_keeps_its_short_timeout() {
    let Ok(Command::Status(args)) = parse(&["status", "--json"]) else {
        panic!("status");
    };
    assert!(args.json);
    assert_eq!(args.timeout_ms, 2000);
}

#[test]
fn log_format_is_global_and_refuses_unknown_formats_listing_the_choices() {
    let cli =
        |args: &[&str]| Cli::try_parse_from(std::iter::once("paxlog").chain(args.iter().copied()));
    let json =
        cli(&["runner", "--brokers", "h:1", "--log-format", "json"]).expect("after the subcommand");
    assert_eq!(json.log_format, LogFormat::Json);
    let json = cli(&["--log-format=json", "status"]).expect("before the subcommand");
    assert_eq!(json.log_format, LogFormat::Json);
    let err = cli(&["--log-format", "xml", "status"]).expect_err("xml is no format");
    assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    let text = err.to_string();
    assert!(text.contains("text") && text.contains("json"), "{text}");
}
