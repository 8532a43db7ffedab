//! Protocol tests: the state machine without sockets.

mod delta;
mod gate;
mod removal;
mod sotw;

pub(super) use crate::testing::{
    CDS, EDS, LDS, RDS, cluster, endpoint, listener, resources, route,
};
