//! Protocol tests of the server: the codec, the push queue, and real tonic
//! streams over loopback.

mod codec;
mod generation;
mod push;
mod server;
mod service;
mod status;

pub(super) use pilot_core::testing::{
    CDS, EDS, LDS, RDS, SDS, cluster, endpoint, node, resources, route,
};
