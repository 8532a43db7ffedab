//! Protocol tests: the state machine without sockets.

mod delta;
mod gate;
mod removal;
mod secrets;
mod sotw;

pub(super) use crate::testing::{
    CDS, EDS, LDS, RDS, SDS, cluster, endpoint, listener, resources, route, secret,
};
