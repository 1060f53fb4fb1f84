//! `paxlog status`: the health of every broker, as a table or as one JSON document.

use crate::health::{self, Health};
use serde::Serialize;
use std::time::Duration;

/// One broker's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokerStatus {
    /// The address asked (`host:port`).
    pub address: String,
    /// What it said.
    #[serde(flatten)]
    pub health: Health,
}

/// The health of a set of brokers, in the order they were given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// One entry per broker.
    pub brokers: Vec<BrokerStatus>,
    /// How many are SERVING.
    pub serving: usize,
    /// How many were asked.
    pub total: usize,
}

impl ClusterStatus {
    /// Whether every broker is SERVING.
    pub fn all_serving(&self) -> bool {
        self.serving == self.total
    }

    /// A table for people, one broker per line, and a summary line.
    pub fn to_table(&self) -> String {
        let width = self
            .brokers
            .iter()
            .map(|b| b.address.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let mut out = format!("{:<width$}  {:<11}  DETAIL\n", "BROKER", "STATUS");
        for broker in &self.brokers {
            let detail = match &broker.health {
                Health::Unreachable(reason) => reason.as_str(),
                _ => "",
            };
            let line = format!(
                "{:<width$}  {:<11}  {detail}",
                broker.address,
                broker.health.label()
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "{}/{} brokers SERVING\n",
            self.serving, self.total
        ));
        out
    }

    /// One JSON document: `{"brokers":[{"address":..,"status":"SERVING"},..],"serving":..,"total":..}`;
    /// unreachable brokers carry an `"error"` field.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Checks every broker concurrently; `timeout` bounds each connect and each call.
pub async fn check_brokers(addresses: &[String], timeout: Duration) -> ClusterStatus {
    let mut checks = tokio::task::JoinSet::new();
    for (index, address) in addresses.iter().enumerate() {
        let address = address.clone();
        checks.spawn(async move { (index, health::check(&address, timeout).await) });
    }
    let mut healths = vec![Health::Unknown; addresses.len()];
    while let Some(joined) = checks.join_next().await {
        match joined {
            Ok((index, health)) => healths[index] = health,
            // A panicked check leaves that broker UNKNOWN rather than failing the command.
            Err(err) => tracing::warn!(error = %err, "health check task failed"),
        }
    }
    let brokers: Vec<BrokerStatus> = addresses
        .iter()
        .zip(healths)
        .map(|(address, health)| BrokerStatus {
            address: address.clone(),
            health,
        })
        .collect();
    let serving = brokers.iter().filter(|b| b.health.is_serving()).count();
    ClusterStatus {
        total: brokers.len(),
        serving,
        brokers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterStatus {
        ClusterStatus {
            brokers: vec![
                BrokerStatus {
                    address: "127.0.0.1:7001".into(),
                    health: Health::Serving,
                },
                BrokerStatus {
                    address: "127.0.0.1:7002".into(),
                    health: Health::Unreachable("connection refused".into()),
                },
            ],
            serving: 1,
            total: 2,
        }
    }

    #[test]
    fn table_shows_status_and_reason() {
        let table = sample().to_table();
        assert_eq!(
            table,
            "BROKER          STATUS       DETAIL\n\
             127.0.0.1:7001  SERVING\n\
             127.0.0.1:7002  UNREACHABLE  connection refused\n\
             1/2 brokers SERVING\n"
        );
    }

    #[test]
    fn json_has_one_status_field_per_broker() {
        let json: serde_json::Value =
            serde_json::from_str(&sample().to_json()).expect("valid JSON");
        assert_eq!(json["brokers"][0]["status"], "SERVING");
        assert!(json["brokers"][0].get("error").is_none());
        assert_eq!(json["brokers"][1]["status"], "UNREACHABLE");
        assert_eq!(json["brokers"][1]["error"], "connection refused");
        assert_eq!(json["serving"], 1);
        assert_eq!(json["total"], 2);
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port")
            .port();
        let status = check_brokers(&[format!("127.0.0.1:{port}")], Duration::from_secs(2)).await;
        assert!(
            matches!(status.brokers[0].health, Health::Unreachable(_)),
            "{status:?}"
        );
        assert!(!status.all_serving());
    }
}
