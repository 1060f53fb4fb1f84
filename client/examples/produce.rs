//! Sends 1,000 keyed records to topic `orders` on the local cluster and prints where
//! the first and last went. Run the cluster first (`./scripts/cluster.sh`), then:
//!
//! ```sh
//! cargo run --example produce
//! ```

use paxlog_client::cli::topic::CreateTopic;
use paxlog_client::{Client, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), paxlog_client::Error> {
    let client = Client::connect(paxlog_client::DEFAULT_BROKERS.split(',')).await?;
    // Create the topic if it is not there yet (an existing one is fine).
    let create = CreateTopic {
        name: "orders".into(),
        partitions: 3,
        replication: 3,
        config: Default::default(),
    };
    if let Err(e) = client.admin().create_topic(create).await
        && !e.to_string().contains("already exists")
    {
        return Err(e);
    }
    // Idempotent by default: retries after a leader change never duplicate a record.
    let producer = client.producer(ProducerConfig::default())?;
    let mut deliveries = Vec::new();
    for i in 0..1_000 {
        let record = ProducerRecord::new("orders", format!("order {i}"))
            .key(format!("customer-{}", i % 10))
            .header("source", "example");
        deliveries.push(producer.send(record).await?);
    }
    let mut last = None;
    for (i, d) in deliveries.into_iter().enumerate() {
        let d = d.await?;
        if i == 0 {
            println!(
                "first record: partition {} offset {:?}",
                d.partition, d.offset
            );
        }
        last = Some(d);
    }
    if let Some(d) = last {
        println!(
            "last record:  partition {} offset {:?}",
            d.partition, d.offset
        );
    }
    producer.close().await;
    Ok(())
}
