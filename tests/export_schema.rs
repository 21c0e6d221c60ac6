//! docs/export.schema.json, the machine-readable schema of an export line, against what
//! `export-jsonl` and `dump --json` really write: every line of exports of clean, filtered,
//! torn and corrupt logs, with text, binary, keyed and tombstone records, must validate, and
//! every field written must be one the schema names (so the schema cannot fall behind the code).

mod common;
#[path = "common/schema.rs"]
mod schema;

use common::{Fixture, json};
use serde_json::Value;

fn schema() -> Value {
    schema::load("export.schema.json")
}

/// Validates every line of `output` and returns the lines' kinds.
fn validate(output: &str, what: &str) -> Vec<String> {
    let schema = schema();
    let mut kinds = Vec::new();
    for (i, line) in output.lines().enumerate() {
        let value = json(line);
        let kind = value["kind"].as_str().unwrap().to_string();
        let def = &schema["$defs"][kind.as_str()];
        schema::check(&schema, def, &value, &format!("{what}, line {}", i + 1));
        kinds.push(kind);
    }
    kinds
}

#[test]
fn every_line_of_an_export_of_a_mixed_log_validates() {
    let f = Fixture::mixed();
    let run = f.run(&["export-jsonl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kinds = validate(&run.stdout, "export");
    assert_eq!(kinds.first().map(String::as_str), Some("header"));
    assert_eq!(kinds.last().map(String::as_str), Some("trailer"));
    assert_eq!(kinds.iter().filter(|k| *k == "record").count(), 6);
}

#[test]
fn filtered_exports_validate_with_every_filter_set() {
    let f = Fixture::mixed();
    for args in [
        &["--from", "2", "--to", "5", "--limit", "2"][..],
        &["--key", "user:7"],
        &[
            "--since",
            "2026-01-31T09:00:01Z",
            "--until",
            "2026-01-31T09:00:03Z",
        ],
        &["--tail", "3"],
    ] {
        let mut all = vec!["export-jsonl"];
        all.extend(args);
        let run = f.run(&all);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        validate(&run.stdout, &format!("export {args:?}"));
    }
}

#[test]
fn exports_of_torn_and_corrupt_logs_validate_with_their_damage() {
    let torn = Fixture::torn(3, 4);
    let run = torn.run(&["export-jsonl"]);
    assert_eq!(run.code, 1);
    validate(&run.stdout, "torn export");
    let corrupt = Fixture::clean(4);
    corrupt.flip_byte(common::clean_offset(2) + 20);
    let run = corrupt.run(&["export-jsonl"]);
    assert_eq!(run.code, 3);
    validate(&run.stdout, "corrupt export");
    let trailer = json(run.stdout.lines().last().unwrap());
    assert_eq!(trailer["status"], "corrupt");
    assert!(!trailer["damage"].as_array().unwrap().is_empty());
    let riddled = Fixture::riddled(700);
    let run = riddled.run(&["export-jsonl"]);
    assert_eq!(run.code, 3);
    validate(&run.stdout, "export with condensed damage");
    let trailer = json(run.stdout.lines().last().unwrap());
    assert_eq!(trailer["damage"][256]["places"], 94);
}

#[test]
fn dump_json_lines_are_record_lines_in_every_payload_encoding() {
    let f = Fixture::mixed();
    for payload in ["text", "hex", "base64"] {
        let run = f.run(&["dump", "--json", "--payload", payload]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let kinds = validate(&run.stdout, &format!("dump --json --payload {payload}"));
        assert!(kinds.iter().all(|k| k == "record"), "{kinds:?}");
    }
}

#[test]
fn the_schema_refuses_lines_that_break_it() {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let f = Fixture::mixed();
    let run = f.run(&["export-jsonl"]);
    let record = json(run.stdout.lines().nth(1).unwrap());
    assert!(validator.is_valid(&record));
    for (field, bad) in [
        ("seq", Value::from(0)),
        ("type", Value::from("insert")),
        ("segment", Value::from("1.wal")),
        ("timestamp", Value::from("2026-01-31 09:00:00")),
        ("payload_encoding", Value::from("rot13")),
    ] {
        let mut broken = record.clone();
        broken[field] = bad;
        assert!(!validator.is_valid(&broken), "{field} accepted: {broken}");
    }
    let mut keyless_with_encoding = record.clone();
    keyless_with_encoding["key"] = Value::Null;
    keyless_with_encoding["key_encoding"] = Value::from("utf8");
    assert!(!validator.is_valid(&keyless_with_encoding));
}
