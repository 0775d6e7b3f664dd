//! A JSON Schema validator of the keywords this repository's schemas use (`schemas/*.json`), so
//! the status and plan documents are checked against the schemas the README documents.

use std::collections::BTreeSet;

use serde_json::Value;

/// Panics with every place `value` breaks `schema`.
#[track_caller]
pub fn validate(schema: &Value, value: &Value, at: &str) {
    let errors = errors(schema, value, at);
    assert!(errors.is_empty(), "{}\n{value:#}", errors.join("\n"));
}

/// Where `value` breaks `schema`: a validator of the keywords the schema uses (`type`, `const`,
/// `enum`, `required`, `properties`, `additionalProperties: false`, `items`). A keyword it does
/// not know fails, so the schema cannot outgrow it unnoticed.
pub fn errors(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let known: BTreeSet<&str> = [
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "const",
        "enum",
        "required",
        "properties",
        "additionalProperties",
        "items",
    ]
    .into();
    let mut errs = Vec::new();
    for key in schema.as_object().unwrap().keys() {
        if !known.contains(key.as_str()) {
            errs.push(format!("{at}: the validator does not know `{key}`"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            other => other
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect(),
        };
        if !types.iter().any(|t| has_type(value, t)) {
            errs.push(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if schema.get("const").is_some_and(|c| c != value) {
        errs.push(format!("{at}: {value} is not {}", schema["const"]));
    }
    if schema
        .get("enum")
        .is_some_and(|e| !e.as_array().unwrap().contains(value))
    {
        errs.push(format!("{at}: {value} is not one of {}", schema["enum"]));
    }
    if let Value::Object(fields) = value {
        errs.extend(object_errors(schema, fields, at));
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), value) {
        for (i, v) in values.iter().enumerate() {
            errs.extend(errors(items, v, &format!("{at}[{i}]")));
        }
    }
    errs
}

fn object_errors(schema: &Value, fields: &serde_json::Map<String, Value>, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !fields.contains_key(name.as_str().unwrap()) {
            errs.push(format!("{at}: `{name}` is missing"));
        }
    }
    for (name, v) in fields {
        match properties.and_then(|p| p.get(name)) {
            Some(sub) => errs.extend(errors(sub, v, &format!("{at}.{name}"))),
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                errs.push(format!("{at}: `{name}` is not in the schema"));
            }
            None => {}
        }
    }
    errs
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown type `{other}` in the schema"),
    }
}
