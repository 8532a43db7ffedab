//! Helpers shared by pilot's integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod envoy_json;
