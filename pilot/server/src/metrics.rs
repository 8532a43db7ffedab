//! `GET /metrics`: the control plane's metrics in the Prometheus text
//! format (version 0.0.4), with Istio's names where istiod has one, so its
//! Grafana dashboards and alerts read Bowline unchanged, and `bowline_`
//! names for the rest.
//!
//! ```text
//! ADS streams ──► XdsMetrics (pushes and rejects per type, push and convergence times)
//! scrape ──► Registry of: XdsMetrics + gauges read then (connected proxies,
//!            config errors, the CA's counts and root expiry) ──► text
//! ```
//!
//! istiod exports its counters without the `_total` suffix (its exporter
//! keeps the names OpenCensus had: `pilot_xds_pushes`, not
//! `pilot_xds_pushes_total`), and dashboards query those names. The
//! Prometheus client library appends `_total` to every metric of type
//! counter, so Istio's counters are [`IstioCounter`]s, typed `untyped` in
//! the exposition: the names stay Istio's, and `rate()` works the same on
//! them. Bowline's own counters are ordinary counters, with `_total`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pilot_core::resources::ResourceType;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A counter exposed under Istio's name, without `_total` (see the module).
#[derive(Clone, Debug, Default)]
pub struct IstioCounter(Arc<AtomicU64>);

impl IstioCounter {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for IstioCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for IstioCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Istio's `type` label: `cds`, `eds`, `lds`, `rds`, `sds`.
type TypeLabel = Vec<(&'static str, &'static str)>;

/// The xDS types in the order of the counters' arrays, with Istio's names.
const TYPES: [(ResourceType, &str); 5] = [
    (ResourceType::Cluster, "cds"),
    (ResourceType::Endpoint, "eds"),
    (ResourceType::Listener, "lds"),
    (ResourceType::Route, "rds"),
    (ResourceType::Secret, "sds"),
];

fn index(ty: ResourceType) -> usize {
    TYPES.iter().position(|(t, _)| *t == ty).unwrap_or(0)
}

/// One counter per xDS type: a plain atomic on the push path; the labelled
/// family is made at the scrape.
#[derive(Debug, Default)]
struct PerType([AtomicU64; TYPES.len()]);

impl PerType {
    fn add(&self, ty: ResourceType, n: u64) {
        self.0[index(ty)].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, ty: ResourceType) -> u64 {
        self.0[index(ty)].load(Ordering::Relaxed)
    }

    /// The types counted so far, as a family labelled `type`.
    fn family(&self) -> Family<TypeLabel, IstioCounter> {
        let family = Family::<TypeLabel, IstioCounter>::default();
        for (ty, name) in TYPES {
            let n = self.get(ty);
            if n > 0 {
                family.get_or_create(&vec![("type", name)]).inc_by(n);
            }
        }
        family
    }
}

/// What the ADS streams count, shared by every stream of a server.
#[derive(Debug)]
pub struct XdsMetrics {
    pushes: PerType,
    rejects: PerType,
    push_time: Histogram,
    convergence: Histogram,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        XdsMetrics {
            pushes: PerType::default(),
            rejects: PerType::default(),
            // istiod's buckets, in seconds.
            push_time: Histogram::new([0.01, 0.1, 0.5, 1.0, 3.0, 5.0]),
            convergence: Histogram::new([0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0]),
        }
    }
}

impl XdsMetrics {
    /// One response of type `ty` sent.
    pub fn pushed(&self, ty: ResourceType) {
        self.pushes.add(ty, 1);
    }

    /// `n` NACKs of type `ty` received.
    pub fn rejected(&self, ty: ResourceType, n: u64) {
        self.rejects.add(ty, n);
    }

    /// A proxy's set went out: `push` after its compile started,
    /// `convergence` after the first change it carries reached the queue.
    pub fn delivered(&self, push: Duration, convergence: Duration) {
        self.push_time.observe(push.as_secs_f64());
        self.convergence.observe(convergence.as_secs_f64());
    }

    /// Responses sent of type `ty` so far (for tests and the bench).
    pub fn pushes(&self, ty: ResourceType) -> u64 {
        self.pushes.get(ty)
    }
}

/// Values read at the scrape, beside [`XdsMetrics`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    /// Connected proxies.
    pub connected: u64,
    /// Errors in the config the current snapshot was built from.
    pub config_errors: u64,
    /// Compiled sets that failed the consistency check, since start.
    pub inconsistent: u64,
    /// The CA's, when one runs.
    pub ca: Option<CaReadings>,
}

/// The CA's figures, from `/api/v1/ca`'s view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaReadings {
    /// Signing requests received.
    pub requests: u64,
    /// Certificates issued.
    pub issued: u64,
    /// The earliest expiry among the roots of the bundle (Unix seconds).
    pub root_expiry: i64,
}

impl CaReadings {
    /// From the JSON `/api/v1/ca` serves.
    pub fn from_view(view: &serde_json::Value) -> CaReadings {
        let count = |field: &str| view["certificates"][field].as_u64().unwrap_or(0);
        let root_expiry = view["roots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["not_after"].as_i64())
            .min()
            .unwrap_or(0);
        CaReadings {
            requests: count("requested"),
            issued: count("issued"),
            root_expiry,
        }
    }
}

/// The exposition of `xds` and `readings`.
pub fn render(xds: &XdsMetrics, readings: &Readings) -> String {
    let mut registry = Registry::default();
    registry.register(
        "pilot_xds_pushes",
        "xDS responses sent, by type",
        xds.pushes.family(),
    );
    registry.register(
        "pilot_total_xds_rejects",
        "Total number of XDS responses from pilot rejected by proxy",
        xds.rejects.family(),
    );
    registry.register(
        "pilot_xds_push_time",
        "Total time in seconds Pilot takes to push lds, rds, cds and eds (compile and send, per proxy)",
        xds.push_time.clone(),
    );
    registry.register(
        "pilot_proxy_convergence_time",
        "Delay in seconds between config change and a proxy receiving all required configuration",
        xds.convergence.clone(),
    );
    registry.register(
        "pilot_xds",
        "Number of endpoints connected to this pilot using XDS",
        ConstGauge::new(readings.connected as i64),
    );
    registry.register(
        "bowline_config_errors",
        "Errors in the config the snapshot being served was built from",
        ConstGauge::new(readings.config_errors as i64),
    );
    registry.register(
        "bowline_consistency_check_failures",
        "Compiled sets that failed the consistency check and were not pushed",
        ConstCounter::new(readings.inconsistent),
    );
    if let Some(ca) = &readings.ca {
        let counter = |n: u64| {
            let counter = IstioCounter::default();
            counter.inc_by(n);
            counter
        };
        registry.register(
            "citadel_server_csr_count",
            "The number of CSRs received by Citadel server",
            counter(ca.requests),
        );
        registry.register(
            "citadel_server_success_cert_issuance_count",
            "The number of certificates issuances that have succeeded",
            counter(ca.issued),
        );
        registry.register(
            "citadel_server_root_cert_expiry_timestamp",
            "The unix timestamp, in seconds, when Citadel root cert will expire",
            ConstGauge::new(ca.root_expiry),
        );
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istios_names_without_total_and_bowlines_with_it() {
        let xds = XdsMetrics::default();
        xds.pushed(ResourceType::Cluster);
        xds.pushed(ResourceType::Cluster);
        xds.pushed(ResourceType::Listener);
        xds.rejected(ResourceType::Listener, 3);
        xds.delivered(Duration::from_millis(20), Duration::from_millis(700));
        let readings = Readings {
            connected: 4,
            config_errors: 1,
            inconsistent: 2,
            ca: Some(CaReadings {
                requests: 9,
                issued: 7,
                root_expiry: 2_000_000_000,
            }),
        };
        let text = render(&xds, &readings);
        for line in [
            "# TYPE pilot_xds_pushes untyped",
            "pilot_xds_pushes{type=\"cds\"} 2",
            "pilot_xds_pushes{type=\"lds\"} 1",
            "pilot_total_xds_rejects{type=\"lds\"} 3",
            "pilot_xds 4",
            "bowline_config_errors 1",
            "bowline_consistency_check_failures_total 2",
            "citadel_server_csr_count 9",
            "citadel_server_success_cert_issuance_count 7",
            "citadel_server_root_cert_expiry_timestamp 2000000000",
            "pilot_proxy_convergence_time_bucket{le=\"0.5\"} 0",
            "pilot_proxy_convergence_time_bucket{le=\"1\"} 1",
            "pilot_proxy_convergence_time_count 1",
            "pilot_xds_push_time_bucket{le=\"0.1\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        assert!(!text.contains("pilot_xds_pushes_total"), "{text}");
    }

    #[test]
    fn the_ca_readings_come_from_its_view() {
        let view = serde_json::json!({
            "roots": [{"not_after": 300}, {"not_after": 200}],
            "certificates": {"requested": 5, "issued": 4},
        });
        assert_eq!(
            CaReadings::from_view(&view),
            CaReadings {
                requests: 5,
                issued: 4,
                root_expiry: 200
            }
        );
    }
}
