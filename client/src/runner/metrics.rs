//! The runner's Prometheus metrics, per trigger, and the `/metrics` endpoint.
//!
//! `paxlog_trigger_lag_records` is the series an external autoscaler scales runners on
//! (KEDA's prometheus scaler, or an HPA through the Prometheus adapter).

use bytes::Bytes;
use http_body_util::Full;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;

/// Labels of per-trigger series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabel {
    /// Trigger name.
    pub trigger: String,
}

/// Labels of invocation counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Trigger name.
    pub trigger: String,
    /// `ok`, `partial` (some records failed), `error`, `throttled`.
    pub outcome: String,
}

/// Every runner series.
#[derive(Debug)]
pub struct RunnerMetrics {
    registry: Registry,
    /// Invocations by outcome.
    pub invocations: Family<OutcomeLabels, Counter>,
    /// Invocation time, seconds.
    pub duration: Family<TriggerLabel, Histogram>,
    /// Records per invocation.
    pub batch_records: Family<TriggerLabel, Histogram>,
    /// Records done (function succeeded for them).
    pub records_done: Family<TriggerLabel, Counter>,
    /// Records sent to the dead-letter topic.
    pub dead_letters: Family<TriggerLabel, Counter>,
    /// Records retried after a failure.
    pub retries: Family<TriggerLabel, Counter>,
    /// Records not processed yet in this runner's partitions (end offset − committed point).
    pub lag_records: Family<TriggerLabel, Gauge>,
    /// Age of the oldest record held and not done, seconds.
    pub lag_seconds: Family<TriggerLabel, Gauge<f64, AtomicU64>>,
    /// The concurrency target.
    pub concurrency: Family<TriggerLabel, Gauge>,
    /// Invocations in flight.
    pub in_flight: Family<TriggerLabel, Gauge>,
    /// Measured arrival rate, records per second.
    pub arrival_rate: Family<TriggerLabel, Gauge<f64, AtomicU64>>,
}

impl Default for RunnerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RunnerMetrics {
    /// Registers every series.
    pub fn new() -> RunnerMetrics {
        let mut registry = Registry::with_prefix("paxlog_trigger");
        let invocations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "invocations",
            "Function invocations by outcome",
            invocations.clone(),
        );
        let duration = Family::<TriggerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        registry.register(
            "duration_seconds",
            "Time of one invocation",
            duration.clone(),
        );
        let batch_records = Family::<TriggerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 14))
        });
        registry.register(
            "batch_records",
            "Records per invocation",
            batch_records.clone(),
        );
        let records_done = Family::<TriggerLabel, Counter>::default();
        registry.register(
            "records_done",
            "Records the function processed successfully",
            records_done.clone(),
        );
        let dead_letters = Family::<TriggerLabel, Counter>::default();
        registry.register(
            "dead_letters",
            "Records sent to the dead-letter topic",
            dead_letters.clone(),
        );
        let retries = Family::<TriggerLabel, Counter>::default();
        registry.register(
            "retries",
            "Records retried after a failure",
            retries.clone(),
        );
        let lag_records = Family::<TriggerLabel, Gauge>::default();
        registry.register(
            "lag_records",
            "Records of this runner's partitions not processed yet (scale runners on this)",
            lag_records.clone(),
        );
        let lag_seconds = Family::<TriggerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "lag_seconds",
            "Age of the oldest record held and not processed yet",
            lag_seconds.clone(),
        );
        let concurrency = Family::<TriggerLabel, Gauge>::default();
        registry.register(
            "concurrency",
            "Invocations the runner allows in flight now (Little's law and AIMD)",
            concurrency.clone(),
        );
        let in_flight = Family::<TriggerLabel, Gauge>::default();
        registry.register("in_flight", "Invocations in flight", in_flight.clone());
        let arrival_rate = Family::<TriggerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "arrival_rate",
            "Records per second arriving in this runner's partitions",
            arrival_rate.clone(),
        );
        RunnerMetrics {
            registry,
            invocations,
            duration,
            batch_records,
            records_done,
            dead_letters,
            retries,
            lag_records,
            lag_seconds,
            concurrency,
            in_flight,
            arrival_rate,
        }
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Removes a deleted trigger's series.
    pub fn forget(&self, trigger: &str) {
        let l = TriggerLabel {
            trigger: trigger.to_owned(),
        };
        for outcome in ["ok", "partial", "error", "throttled"] {
            self.invocations.remove(&OutcomeLabels {
                trigger: trigger.to_owned(),
                outcome: outcome.to_owned(),
            });
        }
        self.duration.remove(&l);
        self.batch_records.remove(&l);
        self.records_done.remove(&l);
        self.dead_letters.remove(&l);
        self.retries.remove(&l);
        self.lag_records.remove(&l);
        self.lag_seconds.remove(&l);
        self.concurrency.remove(&l);
        self.in_flight.remove(&l);
        self.arrival_rate.remove(&l);
    }
}

/// Serves `GET /metrics` (anything else: 404) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<RunnerMetrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let metrics = metrics.clone();
                async move {
                    let response = if req.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header(
                                hyper::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(metrics.render())))
                    } else {
                        hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}
