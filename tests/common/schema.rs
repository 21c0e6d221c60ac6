//! Holding JSON output to a schema in `docs/`: used by `tests/export_schema.rs` and
//! `tests/report_schema.rs` (included by path, so the other test binaries do not build the
//! validator).

use serde_json::Value;

/// The schema `docs/<name>`.
pub fn load(name: &str) -> Value {
    let path = format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the schema is JSON")
}

/// Validates `value` against `def` (a definition of `schema`, or `schema` itself) and checks
/// that every field it has, in nested objects too, is one the definition names: a field the
/// code writes but the schema does not describe fails, so the schema cannot fall behind.
pub fn check(schema: &Value, def: &Value, value: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{value}");
    assert_named(schema, def, value, what);
}

fn assert_named(schema: &Value, def: &Value, value: &Value, what: &str) {
    let def = match def.get("$ref").and_then(Value::as_str) {
        Some(r) => &schema["$defs"][r.trim_start_matches("#/$defs/")],
        None => def,
    };
    // A nullable object is described by the object branch of its `oneOf`.
    let def = def["oneOf"]
        .as_array()
        .and_then(|o| o.iter().find(|d| d["type"] == "object"))
        .unwrap_or(def);
    let Some(fields) = value.as_object() else {
        return;
    };
    for (name, v) in fields {
        let Some(property) = def["properties"].get(name) else {
            panic!("{what}: field {name:?} is not in the schema");
        };
        if v.is_object() {
            assert_named(schema, property, v, what);
        }
        if let (Some(items), Some(list)) = (property.get("items"), v.as_array()) {
            for item in list {
                assert_named(schema, items, item, what);
            }
        }
    }
}
