//! Resource names, in Istio's formats so that operators' habits carry over.

/// `outbound|9080|v1|reviews.default.svc.cluster.local`; the subset is empty
/// for the whole service.
pub fn outbound_cluster(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// `inbound|9080||`: the local application behind an inbound port.
pub fn inbound_cluster(port: u16) -> String {
    format!("inbound|{port}||")
}

/// The outbound listener and the route configuration it uses.
pub const OUTBOUND: &str = "outbound";

/// `inbound|127.0.1.1|9080`.
pub fn inbound_listener(address: &str, port: u16) -> String {
    format!("inbound|{address}|{port}")
}
