//! Merge patch (RFC 7386) and JSON patch (RFC 6902).

use serde_json::Value;

/// Applies a JSON merge patch to `target`.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Splits a JSON pointer into its parent pointer and last token.
fn split(path: &str) -> Result<(&str, String), String> {
    let at = path
        .rfind('/')
        .ok_or_else(|| format!("invalid path {path:?}"))?;
    Ok((&path[..at], unescape(&path[at + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let at = if last == "-" {
                items.len()
            } else {
                last.parse()
                    .map_err(|_| format!("invalid index in {path}"))?
            };
            if at > items.len() {
                return Err(format!("index out of range in {path}"));
            }
            items.insert(at, value);
            Ok(())
        }
        _ => Err(format!("missing parent of {path}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(|| format!("missing {path}")),
        Some(Value::Array(items)) => {
            let at: usize = last
                .parse()
                .map_err(|_| format!("invalid index in {path}"))?;
            if at >= items.len() {
                return Err(format!("index out of range in {path}"));
            }
            Ok(items.remove(at))
        }
        _ => Err(format!("missing parent of {path}")),
    }
}

/// Applies a JSON patch (a list of operations) to `doc`.
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a json patch must be a list of operations")?;
    for op in ops {
        let field = |name: &str| {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or(format!("operation without {name}"))
        };
        let path = field("path")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("operation on {path} without value"))
        };
        match field("op")? {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "move" => {
                let moved = remove(doc, field("from")?)?;
                add(doc, path, moved)?;
            }
            "copy" => {
                let from = field("from")?;
                let copied = doc
                    .pointer(from)
                    .cloned()
                    .ok_or(format!("missing {from}"))?;
                add(doc, path, copied)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("test failed at {path}"));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut doc, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(doc, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"a": [1, 2], "b": {"c": 1}});
        let ops = json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "copy", "from": "/b", "path": "/e"},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/e/c", "value": 2},
        ]);
        json_patch(&mut doc, &ops).unwrap();
        assert_eq!(doc, json!({"a": [2, 3], "b": {"c": 2}, "e": {"c": 2}}));
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/a/0", "value": 9}])
            )
            .is_err()
        );
    }
}
