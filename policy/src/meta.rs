//! The part of the Kubernetes envelope every object carries: `metadata`.
//! The object modules (`service`, `networking`) and `object` all use it,
//! and it uses none of them.

use std::collections::BTreeMap;

/// `metadata`: the parts of Kubernetes' ObjectMeta that the mesh uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub name: String,
    /// `default` when the document names none.
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}
