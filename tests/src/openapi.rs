//! The repository's OpenAPI document (`api/openapi.json`), read so that a
//! test can hold the running API to it: which operations and statuses are
//! documented, and whether a body has the documented shape.
//!
//! The schemas use a small part of JSON Schema (`type`, `properties`,
//! `required`, `additionalProperties: false`, `items`, `enum`, `minimum`,
//! `maximum`, local `$ref`s). This checks exactly that part and refuses a
//! schema with any other keyword, so a document that grows beyond it
//! fails loudly instead of passing unchecked.

use std::collections::BTreeSet;

use serde_json::Value;

/// Keywords that only describe.
const ANNOTATIONS: &[&str] = &["description", "title", "example"];

pub struct OpenApi {
    pub doc: Value,
}

impl OpenApi {
    pub fn load() -> OpenApi {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi.json");
        let text = std::fs::read_to_string(path).expect("api/openapi.json");
        OpenApi { doc: serde_json::from_str(&text).expect("api/openapi.json is JSON") }
    }

    /// Every documented (path, method, status), methods in capitals.
    pub fn operations(&self) -> BTreeSet<(String, String, u16)> {
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for status in op["responses"].as_object().expect("responses").keys() {
                    ops.insert((path.clone(), method.to_uppercase(), status.parse().expect("a status code")));
                }
            }
        }
        ops
    }

    /// The schema of the JSON body documented for this response.
    pub fn response_schema(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        let op = &self.doc["paths"][path][method.to_lowercase()];
        let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
        (!schema.is_null()).then_some(schema)
    }

    /// Where `value` differs from `schema`, one line each; empty when it
    /// has the shape.
    pub fn check(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.walk(schema, value, "$", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("only local $refs: {r}"));
                self.doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {r}"))
            }
            None => schema,
        }
    }

    fn walk(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let obj = schema.as_object().unwrap_or_else(|| panic!("{at}: a schema must be an object"));
        for key in obj.keys() {
            let known = ANNOTATIONS.contains(&key.as_str())
                || matches!(
                    key.as_str(),
                    "type"
                        | "properties"
                        | "required"
                        | "additionalProperties"
                        | "items"
                        | "enum"
                        | "minimum"
                        | "maximum"
                );
            assert!(known, "{at}: schema keyword {key:?} is not checked by tests/src/openapi.rs");
        }
        if let Some(types) = obj.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().map(|t| t.as_str().expect("type name")).collect(),
                _ => panic!("{at}: bad type"),
            };
            if !types.iter().any(|t| has_type(value, t)) {
                errors.push(format!("{at}: {value} is not of type {types:?}"));
                return;
            }
        }
        if let Some(allowed) = obj.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if obj.get("minimum").and_then(Value::as_f64).is_some_and(|min| n < min) {
                errors.push(format!("{at}: {n} is below the minimum"));
            }
            if obj.get("maximum").and_then(Value::as_f64).is_some_and(|max| n > max) {
                errors.push(format!("{at}: {n} is above the maximum"));
            }
        }
        if let Some(fields) = value.as_object() {
            let props = obj.get("properties").and_then(Value::as_object);
            for name in obj.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = name.as_str().expect("required names");
                if !fields.contains_key(name) {
                    errors.push(format!("{at}: missing {name:?}"));
                }
            }
            for (name, v) in fields {
                match props.and_then(|p| p.get(name)) {
                    Some(s) => self.walk(s, v, &format!("{at}.{name}"), errors),
                    None if obj.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        errors.push(format!("{at}: {name:?} is not documented"))
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(list)) = (obj.get("items"), value.as_array()) {
            for (i, v) in list.iter().enumerate() {
                self.walk(items, v, &format!("{at}[{i}]"), errors);
            }
        }
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown type {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_checker_finds_what_differs() {
        let api = OpenApi::load();
        let schema = json!({"$ref": "#/components/schemas/Error"});
        assert!(api.check(&schema, &json!({"error": "trusted", "reason": "x"})).is_empty());
        assert_eq!(api.check(&schema, &json!({"error": "trusted"})).len(), 1, "missing reason");
        assert_eq!(api.check(&schema, &json!({"error": "nope", "reason": "x"})).len(), 1, "not in the enum");
        assert_eq!(api.check(&schema, &json!({"error": "trusted", "reason": "x", "extra": 1})).len(), 1);
        let list = json!({"$ref": "#/components/schemas/BanList"});
        let row = json!({"source": "a", "reason": "b", "remaining_secs": null, "dropped": null, "offenses": 1});
        assert!(api.check(&list, &json!({"bans": [row]})).is_empty());
        let bad = json!({"source": "a", "reason": "b", "remaining_secs": "5", "dropped": null, "offenses": 0});
        assert_eq!(api.check(&list, &json!({"bans": [bad]})).len(), 2, "a string for an integer, below minimum");
        assert!(api.operations().contains(&("/v1/bans".into(), "POST".into(), 201)));
    }
}
