//! A small, strict JSON Schema check for `platform/openapi.json` (OpenAPI 3.1 uses JSON
//! Schema 2020-12). It implements exactly the keywords the document uses — `$ref` (local),
//! `type` (a name or a list, `integer` included), `properties`, `required`,
//! `additionalProperties` (`false` or a schema), `items`, `minItems`, `maxItems`, `enum`,
//! `const`, `oneOf` (exactly one must match), `format: date-time` (RFC 3339) — and refuses a
//! schema with any other keyword, so the document cannot say something this check silently
//! ignores. Why not the `jsonschema` crate: it would check more than the document uses, but
//! pulls in a regex engine, an HTTP client for remote references and some 40 crates into the
//! test build of a 2-core machine, for the dozen keywords above; a keyword added to the
//! document fails here first and is then added (or the crate taken) on purpose.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;

/// Keywords a schema may carry: the validated ones and annotations.
const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "oneOf",
    "format",
    "description",
];

/// The document, for resolving `#/components/schemas/…`.
pub struct Doc<'a>(pub &'a Value);

impl Doc<'_> {
    /// The errors of `v` against `schema` (empty: valid); `at` names the place in `v`.
    pub fn check(&self, schema: &Value, v: &Value, at: &str) -> Vec<String> {
        let mut errors = Vec::new();
        self.walk(schema, v, at, &mut errors);
        errors
    }

    fn resolve<'s>(&'s self, r: &str) -> &'s Value {
        let path = r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("only local references are supported: {r}"));
        let mut node = self.0;
        for part in path.split('/') {
            node = node
                .get(part)
                .unwrap_or_else(|| panic!("unresolved reference {r}"));
        }
        node
    }

    fn walk(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let s: &Map<String, Value> = schema
            .as_object()
            .unwrap_or_else(|| panic!("schema at {at} is not an object: {schema}"));
        for k in s.keys() {
            assert!(
                KNOWN.contains(&k.as_str()),
                "schema keyword `{k}` (at {at}) is not checked by this validator"
            );
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.walk(self.resolve(r), v, at, errors);
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                other => panic!("bad type {other} at {at}"),
            };
            if !types.iter().any(|t| has_type(v, t)) {
                errors.push(format!("{at}: {v} is not of type {types:?}"));
                return;
            }
        }
        if let Some(c) = s.get("const") {
            if c != v {
                errors.push(format!("{at}: {v} is not {c}"));
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errors.push(format!("{at}: {v} is not one of {e:?}"));
            }
        }
        if s.get("format").and_then(Value::as_str) == Some("date-time") {
            if let Some(text) = v.as_str() {
                if time::OffsetDateTime::parse(text, &Rfc3339).is_err() {
                    errors.push(format!("{at}: `{text}` is not an RFC 3339 date-time"));
                }
            }
        }
        if let Some(one_of) = s.get("oneOf").and_then(Value::as_array) {
            let matching = one_of
                .iter()
                .filter(|sub| self.check(sub, v, at).is_empty())
                .count();
            if matching != 1 {
                errors.push(format!(
                    "{at}: {v} matches {matching} of the oneOf alternatives, not exactly one"
                ));
            }
        }
        if let Value::Object(o) = v {
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap_or_default();
                if !o.contains_key(r) {
                    errors.push(format!("{at}: `{r}` is missing"));
                }
            }
            for (k, val) in o {
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(sub), _) => self.walk(sub, val, &format!("{at}.{k}"), errors),
                    (None, Some(Value::Bool(false))) => {
                        errors.push(format!("{at}: `{k}` is not in the schema"))
                    }
                    (None, Some(sub @ Value::Object(_))) => {
                        self.walk(sub, val, &format!("{at}.{k}"), errors)
                    }
                    (None, _) => {}
                }
            }
        }
        if let Value::Array(items) = v {
            if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < n {
                    errors.push(format!("{at}: fewer than {n} items"));
                }
            }
            if let Some(n) = s.get("maxItems").and_then(Value::as_u64) {
                if (items.len() as u64) > n {
                    errors.push(format!("{at}: more than {n} items"));
                }
            }
            if let Some(sub) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.walk(sub, item, &format!("{at}[{i}]"), errors);
                }
            }
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown type {other}"),
    }
}

/// The schema of the answer `status` of `method path` (a template path of the document).
pub fn answer_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let r = &op["responses"][status.to_string()];
    assert!(
        r.is_object(),
        "{method} {path}: answer {status} is not documented"
    );
    &r["content"]["application/json"]["schema"]
}

#[test]
fn the_validator_refuses_what_it_should() {
    let doc = serde_json::json!({"components": {"schemas": {
        "T": {"type": "object", "properties": {"a": {"type": "string", "format": "date-time"},
              "b": {"type": ["integer", "null"]}}, "required": ["a"], "additionalProperties": false},
        "O": {"oneOf": [{"type": "string"}, {"type": "string", "enum": ["x"]}]}}}});
    let d = Doc(&doc);
    let t = serde_json::json!({"$ref": "#/components/schemas/T"});
    assert!(d
        .check(
            &t,
            &serde_json::json!({"a": "2026-11-27T03:00:00Z", "b": null}),
            "$"
        )
        .is_empty());
    for bad in [
        serde_json::json!({"a": "yesterday"}),
        serde_json::json!({"b": 1}),
        serde_json::json!({"a": "2026-11-27T03:00:00Z", "c": 1}),
        serde_json::json!({"a": "2026-11-27T03:00:00Z", "b": 1.5}),
        serde_json::json!([]),
    ] {
        assert!(!d.check(&t, &bad, "$").is_empty(), "{bad}");
    }
    let o = serde_json::json!({"$ref": "#/components/schemas/O"});
    assert!(d.check(&o, &serde_json::json!("y"), "$").is_empty());
    assert!(
        !d.check(&o, &serde_json::json!("x"), "$").is_empty(),
        "both match"
    );
    let unknown = std::panic::catch_unwind(|| {
        Doc(&serde_json::json!({})).check(
            &serde_json::json!({"pattern": "a+"}),
            &serde_json::json!("a"),
            "$",
        )
    });
    assert!(unknown.is_err(), "an unchecked keyword is refused");
}
