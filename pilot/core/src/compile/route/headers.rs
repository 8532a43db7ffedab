//! Header operations (`headers.request` / `headers.response` with `set`,
//! `add` and `remove`) as Envoy's header lists, at route level or on one
//! weighted cluster.
//!
//! ```text
//! set    ─► HeaderValueOption OVERWRITE_IF_EXISTS_OR_ADD
//! add    ─► HeaderValueOption APPEND_IF_EXISTS_OR_ADD
//! remove ─► *_headers_to_remove
//! request set/add of `host` or `:authority` ─► a host rewrite
//! ```
//!
//! Envoy refuses to edit `host` and pseudo-headers through these lists, so,
//! as Istio does, a request `host`/`:authority` value becomes the rewritten
//! authority and other such names are left out (validation rejects them).

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, weighted_cluster::ClusterWeight, weighted_cluster::cluster_weight,
};
use policy::networking::{HeaderOperations, Headers};

/// Envoy's header lists for one set of operations.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct HeaderOps {
    pub(super) request_add: Vec<HeaderValueOption>,
    pub(super) request_remove: Vec<String>,
    pub(super) response_add: Vec<HeaderValueOption>,
    pub(super) response_remove: Vec<String>,
    /// The authority to send upstream, from a request `host` or
    /// `:authority` (`set` wins over `add`).
    pub(super) authority: Option<String>,
}

impl HeaderOps {
    pub(super) fn of(headers: &Headers) -> HeaderOps {
        let Headers { request, response } = headers;
        let (request_add, authority) = additions(request);
        let (response_add, _) = additions(response);
        HeaderOps {
            request_add,
            request_remove: removals(&request.remove),
            response_add,
            response_remove: removals(&response.remove),
            authority,
        }
    }

    /// Appends `other`'s operations after these, so that Envoy applies them
    /// later; an authority already chosen here stays.
    pub(super) fn extend(&mut self, other: HeaderOps) {
        self.request_add.extend(other.request_add);
        self.request_remove.extend(other.request_remove);
        self.response_add.extend(other.response_add);
        self.response_remove.extend(other.response_remove);
        if self.authority.is_none() {
            self.authority = other.authority;
        }
    }

    /// Puts the header lists on a route (the authority goes on its action).
    pub(super) fn apply_to_route(self, route: &mut Route) {
        route.request_headers_to_add = self.request_add;
        route.request_headers_to_remove = self.request_remove;
        route.response_headers_to_add = self.response_add;
        route.response_headers_to_remove = self.response_remove;
    }

    /// Puts the header lists and the authority on one weighted cluster.
    pub(super) fn apply_to_weight(self, weight: &mut ClusterWeight) {
        weight.request_headers_to_add = self.request_add;
        weight.request_headers_to_remove = self.request_remove;
        weight.response_headers_to_add = self.response_add;
        weight.response_headers_to_remove = self.response_remove;
        weight.host_rewrite_specifier = self
            .authority
            .map(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral);
    }
}

/// `set` then `add`, each in name order; and the authority they carry.
fn additions(ops: &HeaderOperations) -> (Vec<HeaderValueOption>, Option<String>) {
    let mut out = Vec::new();
    let mut from_set = None;
    let mut from_add = None;
    for (list, action, authority) in [
        (
            &ops.set,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
            &mut from_set,
        ),
        (
            &ops.add,
            HeaderAppendAction::AppendIfExistsOrAdd,
            &mut from_add,
        ),
    ] {
        for (name, value) in list {
            if is_authority(name) {
                *authority = Some(value.clone());
            }
            if is_internal(name) {
                continue;
            }
            out.push(HeaderValueOption {
                header: Some(HeaderValue {
                    key: name.clone(),
                    value: value.clone(),
                    ..Default::default()
                }),
                append_action: action as i32,
                ..Default::default()
            });
        }
    }
    (out, from_set.or(from_add))
}

fn removals(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !is_internal(n)).cloned().collect()
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority")
}

/// Names Envoy does not let header lists touch.
fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderOperations {
        HeaderOperations {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            add: add
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pairs(list: &[HeaderValueOption]) -> Vec<(String, String, i32)> {
        list.iter()
            .map(|o| {
                let h = o.header.clone().unwrap();
                (h.key, h.value, o.append_action)
            })
            .collect()
    }

    #[test]
    fn set_overwrites_add_appends_remove_removes() {
        let headers = Headers {
            request: ops(&[("x-b", "1"), ("x-a", "2")], &[("x-c", "3")], &["x-d"]),
            response: ops(&[], &[("x-served-by", "bowline")], &["server"]),
        };
        let out = HeaderOps::of(&headers);
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
        let append = HeaderAppendAction::AppendIfExistsOrAdd as i32;
        assert_eq!(
            pairs(&out.request_add),
            [
                ("x-a".into(), "2".into(), overwrite),
                ("x-b".into(), "1".into(), overwrite),
                ("x-c".into(), "3".into(), append),
            ]
        );
        assert_eq!(out.request_remove, ["x-d"]);
        assert_eq!(
            pairs(&out.response_add),
            [("x-served-by".into(), "bowline".into(), append)]
        );
        assert_eq!(out.response_remove, ["server"]);
        assert_eq!(out.authority, None);
    }

    #[test]
    fn host_becomes_the_authority_and_pseudo_headers_are_dropped() {
        let headers = Headers {
            request: ops(
                &[("Host", "set.example")],
                &[(":authority", "added.example"), ("x-ok", "1")],
                &["host", ":path", "x-gone"],
            ),
            response: HeaderOperations::default(),
        };
        let out = HeaderOps::of(&headers);
        assert_eq!(out.authority.as_deref(), Some("set.example"));
        assert_eq!(pairs(&out.request_add).len(), 1);
        assert_eq!(out.request_remove, ["x-gone"]);
    }

    #[test]
    fn extend_keeps_order_and_first_authority() {
        let mut first = HeaderOps {
            request_remove: vec!["a".into()],
            authority: Some("one".into()),
            ..Default::default()
        };
        first.extend(HeaderOps {
            request_remove: vec!["b".into()],
            authority: Some("two".into()),
            ..Default::default()
        });
        assert_eq!(first.request_remove, ["a", "b"]);
        assert_eq!(first.authority.as_deref(), Some("one"));

        let mut weight = ClusterWeight::default();
        first.apply_to_weight(&mut weight);
        assert_eq!(weight.request_headers_to_remove, ["a", "b"]);
        assert_eq!(
            weight.host_rewrite_specifier,
            Some(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(
                "one".into()
            ))
        );
    }
}
