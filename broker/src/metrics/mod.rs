//! Prometheus metrics: the registry every part of the broker registers into, and the HTTP
//! endpoint that serves it ([`http::serve`]).
//!
//! Every metric carries the label `node="<id>"`, so one Prometheus can scrape a whole
//! cluster without relabelling.

pub mod groups;
pub mod http;
pub mod node;
pub mod replica;

pub use groups::{GroupLabels, GroupMetrics, GroupPartitionLabels, GroupsSnapshot};
pub use node::{NodeMetrics, PartitionLabels};
pub use replica::{GroupProgress, ReplicaObserver};

use crate::config::NodeId;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::borrow::Cow;

/// The broker's version, as reported by `paxlog_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The broker's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    up: Gauge,
}

impl Metrics {
    /// Creates the registry with the process-level metrics of node `node`.
    pub fn new(node: NodeId) -> Self {
        let node_label = (Cow::Borrowed("node"), Cow::Owned(node.to_string()));
        let mut registry = Registry::with_prefix_and_labels("paxlog", [node_label].into_iter());

        let up: Gauge = Gauge::default();
        registry.register(
            "up",
            "1 while the broker serves requests, 0 while it shuts down",
            up.clone(),
        );

        let build_info: Gauge = Gauge::default();
        build_info.set(1);
        registry
            .sub_registry_with_label((Cow::Borrowed("version"), Cow::Borrowed(VERSION)))
            .register(
                "build_info",
                "Always 1; the labels describe the running build",
                build_info,
            );

        Metrics { registry, up }
    }

    /// Marks the node serving (`paxlog_up 1`) or shutting down (`0`).
    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// The registry, for parts of the broker that add their own metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_up_and_build_info_with_node_label() {
        let metrics = Metrics::new(7);
        metrics.set_up(true);
        let text = metrics.encode().expect("encode");
        assert!(text.contains("paxlog_up{node=\"7\"} 1"), "{text}");
        assert!(text.contains("paxlog_build_info{"), "{text}");
        assert!(text.contains(&format!("version=\"{VERSION}\"")), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
