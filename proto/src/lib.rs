//! Protocol types: Envoy's xDS API, from the `envoy-types` crate (generated
//! from Envoy's own protos, never hand-copied), plus the helpers every user
//! of them needs. Bowline's own protos, when it has any, are generated here.

pub use envoy_types::pb;
pub use envoy_types::util::pack_any;
