//! Reads topic `orders` as a member of consumer group `example` and prints each record;
//! start several to see the partitions shared, stop one to see them move (within the
//! session timeout). Offsets are committed every second and when it stops (Ctrl-C).
//!
//! ```sh
//! cargo run --example consume
//! ```

use paxlog_client::{Client, ConsumerConfig};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), paxlog_client::Error> {
    let client = Client::connect(paxlog_client::DEFAULT_BROKERS.split(',')).await?;
    let mut consumer = client.consumer(ConsumerConfig {
        group: Some("example".into()),
        ..ConsumerConfig::default()
    });
    consumer.subscribe(&["orders"]).await?;
    loop {
        tokio::select! {
            polled = consumer.poll(Duration::from_millis(500)) => {
                for r in polled? {
                    println!(
                        "{}/{} @{}: {}",
                        r.topic,
                        r.partition,
                        r.offset,
                        String::from_utf8_lossy(&r.value)
                    );
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Commits the positions and leaves the group, so the others take over at once.
    consumer.close().await
}
