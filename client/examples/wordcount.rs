//! Word count as two chained functions over topics, run by `paxlog runner`:
//!
//! ```text
//!   lines ──trigger wc-map──▶ wordcount map ──▶ words (key = word, value = 1)
//!   words ──trigger wc-reduce─▶ wordcount reduce ──▶ counts (key = word, value = n)
//!   wordcount report: reads counts from the start and adds up each word's partial counts
//! ```
//!
//! `map` and `reduce` are command functions: a batch of records as JSON on stdin, records
//! for the trigger's output topic as JSON on stdout. The words topic is keyed by word, so
//! all of a word's records meet in one partition (the shuffle); `reduce` emits one partial
//! count per word and batch. With the local cluster running (`./scripts/cluster.sh`):
//!
//! ```sh
//! cargo build --example wordcount
//! export WC=$HOME/.cache/paxlog/target/debug/examples/wordcount   # scripts/setup.sh's target dir
//! paxlog topic create lines --partitions 2
//! paxlog topic create words --partitions 3
//! paxlog topic create counts --partitions 1
//! paxlog trigger create wc-map --topic lines --command "$WC map" --output-topic words --start earliest
//! paxlog trigger create wc-reduce --topic words --command "$WC reduce" --output-topic counts --start earliest
//! paxlog runner &
//! printf 'the quick brown fox\njumps over the lazy dog\nthe end\n' | paxlog produce lines
//! $WC report            # the: 3, brown: 1, ... (once the runner has caught up)
//! ```

use paxlog_client::{Client, ConsumerConfig, OffsetReset};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "map" => map(),
        "reduce" => reduce(),
        "report" => report(),
        _ => Err("usage: wordcount map|reduce|report [--brokers B] [--topic counts]".into()),
    }
}

fn batch() -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let batch: Value = serde_json::from_str(&input)?;
    Ok(batch["records"].as_array().cloned().unwrap_or_default())
}

/// Lines to words: one output record per word, keyed by the word.
fn map() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for record in batch()? {
        let line = record["value"].as_str().unwrap_or_default();
        for word in line
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            out.push(json!({"key": word.to_lowercase(), "value": "1"}));
        }
    }
    println!("{}", json!({ "records": out }));
    Ok(())
}

/// Words to partial counts: one output record per distinct word of the batch.
fn reduce() -> Result<(), Box<dyn std::error::Error>> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for record in batch()? {
        let word = record["key"].as_str().unwrap_or_default().to_owned();
        let n: u64 = record["value"].as_str().unwrap_or("1").parse().unwrap_or(1);
        *counts.entry(word).or_default() += n;
    }
    let out: Vec<Value> = counts
        .into_iter()
        .map(|(w, n)| json!({"key": w, "value": n.to_string()}))
        .collect();
    println!("{}", json!({ "records": out }));
    Ok(())
}

/// Adds up the partial counts; prints `word count` lines, most frequent first.
fn report() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let brokers = arg("--brokers", paxlog_client::DEFAULT_BROKERS);
    let topic = arg("--topic", "counts");
    let runtime = tokio::runtime::Runtime::new()?;
    let totals = runtime.block_on(async {
        let client = Client::connect(brokers.split(',')).await?;
        let partitions = client.admin().describe_topic(&topic).await?.partitions;
        let mut consumer = client.consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        });
        consumer.assign(&topic, partitions.iter().map(|p| p.partition));
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let records = consumer.poll(Duration::from_millis(300)).await?;
            if records.is_empty() {
                break;
            }
            for r in records {
                let word = String::from_utf8_lossy(&r.key).into_owned();
                let n: u64 = String::from_utf8_lossy(&r.value).parse().unwrap_or(0);
                *totals.entry(word).or_default() += n;
            }
        }
        Ok::<_, paxlog_client::Error>(totals)
    })?;
    let mut rows: Vec<(String, u64)> = totals.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (word, n) in rows {
        println!("{word} {n}");
    }
    Ok(())
}
