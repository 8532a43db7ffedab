//! What a connection remembers of one resource type per client, kept small:
//! a server holds one of these per type for every connected proxy, and an
//! unscoped proxy of a large mesh holds thousands of resources.
//!
//! - [`HeldSet`]: the resources the client holds. After a response that
//!   brings it to a whole set the connection serves (the usual case), that
//!   set itself, shared with the compiled config; otherwise a sorted vector
//!   of the shared `Arc<Resource>`s sent to it (a pointer each; the name is
//!   the resource's own), never a map of copied names.
//! - [`Names`]: the names a client subscribes to. Envoy asks for exactly the
//!   load assignments of the clusters it was sent, and the route
//!   configurations of its listeners, so the names are nearly always the
//!   names of a set the connection serves: then they are held as that set.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::resources::{Resource, ResourceSet, sum_names};
use crate::xds::request::RequestNames;

/// One resource the client holds.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Held {
    /// A resource this connection sent.
    Sent(Arc<Resource>),
    /// Delta: a version the client reported holding when it (re)connected.
    Reported(Box<Reported>),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Reported {
    pub(super) name: String,
    pub(super) version: String,
}

impl Held {
    pub(super) fn reported(name: String, version: String) -> Held {
        Held::Reported(Box::new(Reported { name, version }))
    }

    pub(super) fn name(&self) -> &str {
        HeldRef::from(self).name()
    }
}

/// One entry of a [`HeldSet`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum HeldRef<'a> {
    Sent(&'a Arc<Resource>),
    Reported(&'a Reported),
}

impl<'a> HeldRef<'a> {
    pub(super) fn name(self) -> &'a str {
        match self {
            HeldRef::Sent(r) => &r.name,
            HeldRef::Reported(r) => &r.name,
        }
    }

    pub(super) fn version(self) -> &'a str {
        match self {
            HeldRef::Sent(r) => &r.version,
            HeldRef::Reported(r) => &r.version,
        }
    }

    pub(super) fn sent(self) -> Option<&'a Arc<Resource>> {
        match self {
            HeldRef::Sent(r) => Some(r),
            HeldRef::Reported(_) => None,
        }
    }
}

impl<'a> From<&'a Held> for HeldRef<'a> {
    fn from(held: &'a Held) -> Self {
        match held {
            Held::Sent(r) => HeldRef::Sent(r),
            Held::Reported(r) => HeldRef::Reported(r),
        }
    }
}

/// What the client holds of one type, in name order, one entry per name:
/// most often exactly a set the connection served (every resource of it,
/// as sent), held as that set, which costs nothing per resource; otherwise
/// a sorted vector of pointers to the shared resources sent.
#[derive(Clone, Debug)]
pub(super) enum HeldSet {
    Whole(ResourceSet),
    Listed(Vec<Held>),
}

impl Default for HeldSet {
    fn default() -> Self {
        HeldSet::Listed(Vec::new())
    }
}

impl HeldSet {
    /// The entries as a vector, for a change a whole set cannot take.
    fn listed(&mut self) -> &mut Vec<Held> {
        if let HeldSet::Whole(set) = self {
            *self = HeldSet::Listed(set.values().map(|r| Held::Sent(Arc::clone(r))).collect());
        }
        match self {
            HeldSet::Listed(held) => held,
            HeldSet::Whole(_) => unreachable!("just listed"),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<HeldRef<'_>> {
        match self {
            HeldSet::Whole(set) => set.get(name).map(HeldRef::Sent),
            HeldSet::Listed(held) => held
                .binary_search_by(|h| h.name().cmp(name))
                .ok()
                .map(|i| (&held[i]).into()),
        }
    }

    /// The client now holds `set`, every resource of it, and nothing else.
    pub(super) fn hold(&mut self, set: &ResourceSet) {
        *self = HeldSet::Whole(set.clone());
    }

    /// Adds every resource of `sent`, which is in name order: one merge of
    /// two sorted runs, however many there are.
    pub(super) fn insert_sorted(&mut self, sent: &[Arc<Resource>]) {
        if sent.is_empty() {
            return;
        }
        let old = std::mem::take(self.listed());
        let mut merged = Vec::with_capacity(old.len() + sent.len());
        let mut old = old.into_iter().peekable();
        for r in sent {
            while let Some(h) = old.next_if(|h| h.name() < r.name.as_str()) {
                merged.push(h);
            }
            old.next_if(|h| h.name() == r.name.as_str());
            merged.push(Held::Sent(Arc::clone(r)));
        }
        merged.extend(old);
        *self = HeldSet::Listed(merged);
    }

    pub(super) fn remove(&mut self, name: &str) {
        if self.get(name).is_none() {
            return;
        }
        let held = self.listed();
        if let Ok(i) = held.binary_search_by(|h| h.name().cmp(name)) {
            held.remove(i);
        }
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(HeldRef<'_>) -> bool) {
        if self.iter().all(&mut keep) {
            return;
        }
        self.listed().retain(|h| keep(h.into()));
    }

    pub(super) fn clear(&mut self) {
        *self = HeldSet::default();
    }

    pub(super) fn len(&self) -> usize {
        match self {
            HeldSet::Whole(set) => set.len(),
            HeldSet::Listed(held) => held.len(),
        }
    }

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = HeldRef<'_>> + '_> {
        match self {
            HeldSet::Whole(set) => Box::new(set.values().map(HeldRef::Sent)),
            HeldSet::Listed(held) => Box::new(held.iter().map(HeldRef::from)),
        }
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(HeldRef::name)
    }
}

impl PartialEq for HeldSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FromIterator<Held> for HeldSet {
    /// The last of several entries under one name wins, as a map's insert.
    fn from_iter<I: IntoIterator<Item = Held>>(items: I) -> Self {
        let mut all: Vec<Held> = items.into_iter().collect();
        all.reverse();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all.dedup_by(|later, first| later.name() == first.name());
        HeldSet::Listed(all)
    }
}

/// The names a client subscribes to of one type.
#[derive(Clone, Debug)]
pub(super) enum Names {
    /// The names of the resources of this set, held without copying a name.
    Of(ResourceSet),
    Listed(BTreeSet<String>),
}

impl Default for Names {
    fn default() -> Self {
        Names::Listed(BTreeSet::new())
    }
}

impl Names {
    /// `names`, held as the names of `set` when they are exactly those.
    pub(super) fn new(names: BTreeSet<String>, set: &ResourceSet) -> Names {
        if !names.is_empty() && names.len() == set.len() && names.iter().eq(set.keys()) {
            Names::Of(set.clone())
        } else {
            Names::Listed(names)
        }
    }

    /// A request's names, held as the names of `set` when they are
    /// exactly those (found without making a `String` of any).
    pub(super) fn from_request(names: &RequestNames, set: &ResourceSet) -> Names {
        if !names.is_empty() && names.are_names_of(set) {
            Names::Of(set.clone())
        } else {
            Names::new(names.to_set(), set)
        }
    }

    /// The same names, held as `set`'s if they are exactly its names (a new
    /// set of the same names, after a push, or the names a Delta client
    /// has subscribed to one by one).
    pub(super) fn settle(&mut self, set: &ResourceSet) {
        match self {
            Names::Of(held) if !held.same(set) && held.same_names(set) => {
                *self = Names::Of(set.clone());
            }
            Names::Of(_) => {}
            Names::Listed(names) => *self = Names::new(std::mem::take(names), set),
        }
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        match self {
            Names::Of(set) => set.contains_key(name),
            Names::Listed(names) => names.contains(name),
        }
    }

    /// The names in order.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Names::Of(set) => Box::new(set.keys().map(String::as_str)),
            Names::Listed(names) => Box::new(names.iter().map(String::as_str)),
        }
    }

    /// Whether these are the names of `set`, the very set, so every
    /// resource of it is subscribed.
    pub(super) fn are_all_of(&self, set: &ResourceSet) -> bool {
        matches!(self, Names::Of(held) if held.same(set))
    }

    /// Whether a request's `names` are these names.
    pub(super) fn same_as(&self, names: &RequestNames) -> bool {
        match self {
            Names::Of(set) => {
                names.are_names_of(set)
                    || (names.len() > set.len() && names.to_set().iter().eq(set.keys()))
            }
            Names::Listed(listed) => {
                names.are(listed, sum_names(listed.iter().map(|n| n.as_bytes())))
            }
        }
    }

    fn listed(&mut self) -> &mut BTreeSet<String> {
        if let Names::Of(set) = self {
            *self = Names::Listed(set.keys().cloned().collect());
        }
        match self {
            Names::Listed(names) => names,
            Names::Of(_) => unreachable!("just listed"),
        }
    }

    pub(super) fn insert(&mut self, name: String) {
        if !self.contains(&name) {
            self.listed().insert(name);
        }
    }

    pub(super) fn remove(&mut self, name: &str) {
        if self.contains(name) {
            self.listed().remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::Any;

    use super::*;
    use crate::resources::{ResourceMap, ResourceType};

    fn r(name: &str, body: &str) -> Arc<Resource> {
        let any = Any {
            type_url: body.to_string(),
            value: Vec::new(),
        };
        Arc::new(Resource::new(ResourceType::Endpoint, name, &any))
    }

    #[test]
    fn a_held_set_is_a_map_by_name() {
        let mut held: HeldSet = [
            Held::reported("b".into(), "1".into()),
            Held::Sent(r("a", "x")),
            Held::reported("b".into(), "2".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(held.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(held.get("b").map(HeldRef::version), Some("2"));
        held.insert_sorted(&[r("0", "y"), r("b", "z"), r("c", "z")]);
        assert_eq!(held.names().collect::<Vec<_>>(), ["0", "a", "b", "c"]);
        assert_eq!(held.get("b").and_then(HeldRef::sent), Some(&r("b", "z")));
        held.insert_sorted(&[r("a2", "w")]);
        held.remove("0");
        assert_eq!(held.names().collect::<Vec<_>>(), ["a", "a2", "b", "c"]);
        held.retain(|h| h.name() != "c");
        assert_eq!(held.len(), 3);

        // A whole set answers the same, and turns into a list on a change.
        let map: ResourceMap = ["a", "b"]
            .into_iter()
            .map(|n| (n.to_string(), r(n, n)))
            .collect();
        let set = ResourceSet::from(map);
        let mut whole = HeldSet::default();
        whole.hold(&set);
        assert!(matches!(whole, HeldSet::Whole(_)));
        assert_eq!(whole.get("a").and_then(HeldRef::sent), Some(&r("a", "a")));
        assert_eq!(whole.names().collect::<Vec<_>>(), ["a", "b"]);
        whole.retain(|_| true);
        assert!(matches!(whole, HeldSet::Whole(_)), "nothing to drop");
        whole.remove("a");
        assert_eq!(whole.names().collect::<Vec<_>>(), ["b"]);
        let mut listed: HeldSet = [Held::Sent(r("b", "b"))].into_iter().collect();
        assert_eq!(whole, listed);
        listed.insert_sorted(&[r("a", "a")]);
        let mut again = HeldSet::default();
        again.hold(&set);
        assert_eq!(listed, again);
    }

    #[test]
    fn names_of_a_set_are_held_as_the_set_until_they_differ() {
        let map: ResourceMap = ["a", "b"]
            .into_iter()
            .map(|n| (n.to_string(), r(n, n)))
            .collect();
        let set = ResourceSet::from(map);
        let ab: BTreeSet<String> = ["a", "b"].into_iter().map(String::from).collect();
        let mut names = Names::new(ab.clone(), &set);
        assert!(names.are_all_of(&set));
        assert!(
            names.same_as(&request(&["b", "a"])) && names.contains("a") && !names.contains("c")
        );
        names.insert("c".into());
        assert!(!names.are_all_of(&set));
        assert_eq!(names.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        names.remove("c");
        names.settle(&set);
        assert!(names.are_all_of(&set));
        // A set of other names is listed.
        let a: BTreeSet<String> = ["a"].into_iter().map(String::from).collect();
        assert!(!Names::new(a, &set).are_all_of(&set));
    }

    fn request(names: &[&str]) -> RequestNames {
        RequestNames::new(names.iter().map(|n| n.as_bytes().to_vec().into()).collect())
    }

    #[test]
    fn a_request_is_compared_with_held_names_without_building_a_set() {
        let map: ResourceMap = ["a", "b", "c"]
            .into_iter()
            .map(|n| (n.to_string(), r(n, n)))
            .collect();
        let set = ResourceSet::from(map);
        // Exactly the set's names, in any order: held as the set.
        let held = Names::from_request(&request(&["c", "a", "b"]), &set);
        assert!(held.are_all_of(&set));
        assert!(held.same_as(&request(&["b", "c", "a"])));
        // A repeat is the same subscription; a missing or other name is not.
        assert!(held.same_as(&request(&["a", "b", "c", "a"])));
        assert!(!held.same_as(&request(&["a", "b", "a"])));
        assert!(!held.same_as(&request(&["a", "b"])));
        assert!(!held.same_as(&request(&["a", "b", "d"])));
        // Names that are not the set's are listed, and compared the same way.
        let listed = Names::from_request(&request(&["b", "a", "a"]), &set);
        assert!(!listed.are_all_of(&set));
        assert_eq!(listed.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(listed.same_as(&request(&["a", "b"])));
        assert!(listed.same_as(&request(&["b", "b", "a"])));
        assert!(!listed.same_as(&request(&["a", "c"])));
        assert!(!listed.same_as(&request(&["a"])));
        // The request's names that repeat the set's, plus one, are not the set.
        assert!(!Names::from_request(&request(&["a", "b", "c", "d"]), &set).are_all_of(&set));
    }
}
