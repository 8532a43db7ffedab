//! The fields the decoder knows, for tools and tests that must walk all of
//! them (such as a check that each one reaches the compiled output).
//!
//! The list comes from the decoder's own tables: a field added to a decoder
//! is in [`shapes`] with no other change.

use crate::decode::ShapeId;

/// One struct-like mapping of the configuration API and how its fields are
/// treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeInfo {
    /// Where the mapping sits, from the kind down, with `[]` for a list item
    /// and `*` for any kind: `VirtualService.spec.http[]`. A mapping read in
    /// several places is named after the first of them.
    pub name: &'static str,
    /// Fields that are decoded, by their lowerCamelCase name.
    pub known: &'static [&'static str],
    /// Fields of the upstream API that are an error when set ("not supported yet").
    pub unsupported: &'static [&'static str],
    /// Fields accepted and dropped by design (server-managed metadata, status,
    /// Service fields that only concern kube-proxy).
    pub ignored: &'static [&'static str],
    /// Whether protobuf snake_case names are accepted as well.
    pub proto_names: bool,
}

/// Every mapping the decoder reads.
pub fn shapes() -> impl Iterator<Item = ShapeInfo> {
    ShapeId::ALL.iter().map(|id| {
        let shape = id.shape();
        ShapeInfo {
            name: shape.name,
            known: shape.known,
            unsupported: shape.unsupported,
            ignored: shape.ignored,
            proto_names: shape.proto_names,
        }
    })
}
