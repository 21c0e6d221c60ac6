//! docs/report.schema.json against what `verify --json` and `stat --json` really print, for
//! clean, rotated, unsynced, torn, corrupt and stray-file logs: every object validates, every
//! field printed is one the schema names, and the schema refuses objects that break it.

mod common;
#[path = "common/schema.rs"]
mod schema;

use common::{Fixture, json};
use serde_json::Value;
use walctl::Entry;

fn schema() -> Value {
    schema::load("report.schema.json")
}

fn validate(value: &Value, what: &str) {
    let schema = schema();
    schema::check(&schema, &schema, value, what);
}

fn logs() -> Vec<(&'static str, Fixture)> {
    let unsynced = Fixture::clean(2);
    unsynced.append(&[Entry::keyed(b"k", b"not synced")], false);
    let corrupt = Fixture::clean(4);
    corrupt.flip_byte(common::clean_offset(2) + 20);
    let stray = Fixture::clean(1);
    std::fs::write(stray.dir.join("backup.wal"), b"x").unwrap();
    vec![
        ("clean", Fixture::clean(3)),
        ("rotated", Fixture::rotated(40)),
        ("unsynced", unsynced),
        ("torn", Fixture::torn(3, 4)),
        ("corrupt", corrupt),
        ("stray file", stray),
        ("condensed damage", Fixture::riddled(700)),
    ]
}

#[test]
fn verify_json_validates_for_every_kind_of_log() {
    for (what, f) in logs() {
        let run = f.run(&["verify", "--json"]);
        assert!([0, 1, 3].contains(&run.code), "{what}: {}", run.stderr);
        validate(&json(&run.stdout), &format!("verify --json, {what}"));
    }
}

#[test]
fn stat_json_validates_with_its_summary_fields() {
    for (what, f) in logs() {
        let run = f.run(&["stat", "--json"]);
        assert!([0, 1, 3].contains(&run.code), "{what}: {}", run.stderr);
        let v = json(&run.stdout);
        validate(&v, &format!("stat --json, {what}"));
        assert!(v["segment_count"].is_u64(), "{what}");
    }
}

#[test]
fn the_cases_cover_damage_and_strays() {
    let verdicts: Vec<(String, Value)> = logs()
        .into_iter()
        .map(|(what, f)| {
            let v = json(&f.run(&["verify", "--json"]).stdout);
            (what.to_string(), v)
        })
        .collect();
    let status = |w: &str| verdicts.iter().find(|(n, _)| n == w).unwrap().1.clone();
    assert_eq!(status("torn")["status"], "torn_tail");
    assert_eq!(status("corrupt")["status"], "corrupt");
    assert_eq!(status("corrupt")["damage"][0]["class"], "corrupt");
    let condensed = status("condensed damage");
    assert_eq!(condensed["damaged_places"], 350);
    assert_eq!(condensed["damage"][256]["kind"], "many_places");
    assert_eq!(
        status("stray file")["stray_files"],
        serde_json::json!(["backup.wal"])
    );
}

#[test]
fn the_schema_refuses_reports_that_break_it() {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let report = json(&Fixture::clean(2).run(&["verify", "--json"]).stdout);
    assert!(validator.is_valid(&report));
    for (field, bad) in [
        ("status", Value::from("fine")),
        ("records", Value::from(-1)),
        ("log_id", Value::from("XYZ")),
        ("durable_seq", Value::from(0)),
        ("segments", Value::from("1")),
    ] {
        let mut broken = report.clone();
        broken[field] = bad;
        assert!(!validator.is_valid(&broken), "{field} accepted: {broken}");
    }
    let mut missing = report.clone();
    missing.as_object_mut().unwrap().remove("damage");
    assert!(!validator.is_valid(&missing));
}
