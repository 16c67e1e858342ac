//! Encodes call arguments the way PHP parses form bodies: nested objects and
//! arrays in bracket notation (`values[0]=42`, `courses[0][id]=7`).

use serde_json::Value;

/// Flattens `args` (a JSON object) into form fields, in order.
/// Booleans become `1`/`0` (as PHP expects); nulls are left out.
pub fn encode(args: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = args {
        for (key, value) in map {
            flatten(key.clone(), value, &mut out);
        }
    }
    out
}

fn flatten(prefix: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((prefix, if *b { "1" } else { "0" }.to_owned())),
        Value::Number(n) => out.push((prefix, n.to_string())),
        Value::String(s) => out.push((prefix, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{prefix}[{i}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                flatten(format!("{prefix}[{key}]"), item, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(v: &Value) -> Vec<String> {
        encode(v)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn lists_use_numbered_brackets() {
        assert_eq!(
            pairs(&json!({"field": "id", "values": [42, 43]})),
            ["field=id", "values[0]=42", "values[1]=43"]
        );
    }

    #[test]
    fn nested_structures_nest_brackets() {
        assert_eq!(
            pairs(
                &json!({"users": [{"id": 4, "customfields": [{"type": "office", "value": "B12"}]}]})
            ),
            [
                "users[0][customfields][0][type]=office",
                "users[0][customfields][0][value]=B12",
                "users[0][id]=4"
            ]
        );
    }

    #[test]
    fn booleans_are_php_flags_and_nulls_are_omitted() {
        assert_eq!(
            pairs(&json!({"a": true, "b": false, "c": null})),
            ["a=1", "b=0"]
        );
    }
}
