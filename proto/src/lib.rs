//! Protocol types: Envoy's xDS API, from the `envoy-types` crate (generated
//! from Envoy's own protos, never hand-copied), plus the helpers every user
//! of them needs, and the few protos of Istio's that Bowline serves
//! (the CA's, in [`istio`]), and Bowline's own (in [`bowline`]).

pub use envoy_types::pb;
pub use envoy_types::util::pack_any;

pub mod bowline;
pub mod istio;
