//! `walctl export-jsonl`: header, records and trailer; the digest's exact definition; the
//! output file's exclusive creation and mode; filters; damage; and the round trip through
//! `append --jsonl`.

mod common;

use common::{Fixture, json, json_lines, records};
use sha2::{Digest as _, Sha256};
use walctl::RecordKind;

#[test]
fn export_has_header_records_and_a_trailer_with_count_and_digest() {
    let f = Fixture::mixed();
    let run = f.run(&["export-jsonl"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1 + 6 + 1);
    let header = json(lines[0]);
    assert_eq!(
        (header["kind"].as_str(), header["schema"].as_str()),
        (Some("header"), Some("walctl.export"))
    );
    assert_eq!(header["version"], 1);
    assert_eq!(header["source"], "<DIR>");
    let trailer = json(lines[7]);
    assert_eq!(trailer["kind"], "trailer");
    assert_eq!(trailer["records"], 6);
    assert_eq!(trailer["status"], "clean");
    // The digest is SHA-256 over every record line, newline included, in file order.
    let mut hasher = Sha256::new();
    for line in &lines[1..7] {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    assert_eq!(trailer["sha256"], walctl::repair::hex(&hasher.finalize()));
}

#[test]
fn record_lines_name_their_encodings() {
    let f = Fixture::mixed();
    let lines = json_lines(&f.run(&["export-jsonl"]).stdout);
    let text = &lines[3];
    assert_eq!(
        (text["key"].as_str(), text["key_encoding"].as_str()),
        (Some("user:7"), Some("utf8"))
    );
    assert_eq!(
        (text["payload"].as_str(), text["payload_encoding"].as_str()),
        (Some("{\"name\":\"Ada\"}"), Some("utf8"))
    );
    let binary = &lines[4];
    assert_eq!(
        (
            binary["payload"].as_str(),
            binary["payload_encoding"].as_str()
        ),
        (Some("AP8gYmluYXJ5IBs="), Some("base64"))
    );
    assert_eq!(
        (binary["key"].clone(), binary["key_encoding"].clone()),
        (serde_json::Value::Null, serde_json::Value::Null)
    );
    assert_eq!(
        (lines[5]["key"].as_str(), lines[5]["key_encoding"].as_str()),
        (Some("/mtleQ=="), Some("base64"))
    );
    assert_eq!(lines[6]["type"], "tombstone");
    for line in &lines[1..7] {
        for field in [
            "seq",
            "timestamp",
            "timestamp_nanos",
            "segment",
            "offset",
            "length",
            "crc",
        ] {
            assert!(!line[field].is_null(), "{field} missing in {line}");
        }
    }
}

#[test]
fn export_then_reimport_with_append_jsonl_gives_the_same_records() {
    let f = Fixture::mixed();
    let export = f.run(&["export-jsonl"]);
    let target = Fixture::empty();
    let run = target.run_stdin(&["append", "--jsonl", "--sync"], export.stdout);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "1\n2\n3\n4\n5\n6\n");
    let (old, new) = (records(&f.dir), records(&target.dir));
    let shape = |r: &walctl::Record| {
        (
            r.seq,
            r.kind,
            r.key.clone(),
            r.payload.clone(),
            r.timestamp_nanos,
        )
    };
    assert_eq!(
        old.iter().map(shape).collect::<Vec<_>>(),
        new.iter().map(shape).collect::<Vec<_>>()
    );
    assert_eq!(new[5].kind, RecordKind::Tombstone);
}

#[test]
fn output_file_is_created_with_mode_0600_and_never_overwritten() {
    let f = Fixture::clean(3);
    let target = f.tmp.path().join("audit.jsonl");
    let run = f.run(&["export-jsonl", "--output", target.to_str().unwrap()]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert!(
        run.stderr
            .starts_with("walctl: exported 3 records to <TMP>/audit.jsonl (sha256 "),
        "{}",
        run.stderr
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let exported = std::fs::read_to_string(&target).unwrap();
    assert_eq!(exported.lines().count(), 5);
    let again = f.run(&["export-jsonl", "--output", target.to_str().unwrap()]);
    assert_eq!((again.code, again.stdout.as_str()), (2, ""));
    assert_eq!(
        again.stderr,
        "walctl: <TMP>/audit.jsonl already exists; pass --force to replace it\n"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), exported);
}

#[test]
fn output_to_a_bare_relative_name_lands_in_the_current_directory() {
    // The export's directory is fsynced after the file is created or renamed; for a bare name
    // that directory is `.` (the empty parent names none).
    let f = Fixture::clean(2);
    for args in [
        &["--output", "audit.jsonl"][..],
        &["--output", "audit.jsonl", "--force"],
    ] {
        let run = f.run(&[&["export-jsonl"][..], args].concat());
        assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
        assert!(
            run.stderr
                .starts_with("walctl: exported 2 records to audit.jsonl (sha256 "),
            "{}",
            run.stderr
        );
        let exported = std::fs::read_to_string(f.tmp.path().join("audit.jsonl")).unwrap();
        assert_eq!(exported.lines().count(), 4);
    }
}

#[test]
fn force_replaces_the_output_file() {
    let f = Fixture::clean(3);
    let target = f.tmp.path().join("audit.jsonl");
    std::fs::write(&target, "old contents\n").unwrap();
    let run = f.run(&[
        "export-jsonl",
        "--output",
        target.to_str().unwrap(),
        "--force",
        "--to",
        "2",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = json_lines(&std::fs::read_to_string(&target).unwrap());
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["filters"]["to"], 2);
    assert_eq!(lines[3]["records"], 2);
    let leftovers: Vec<_> = std::fs::read_dir(f.tmp.path())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with(".tmp").then_some(name)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn filters_apply_as_in_dump() {
    let f = Fixture::clean(6);
    let run = f.run(&["export-jsonl", "--from", "2", "--limit", "3"]);
    let seqs: Vec<_> = json_lines(&run.stdout)
        .iter()
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
}

/// `--limit 0` selects nothing: the export is a header and a trailer of 0 records, whose
/// digest is that of no bytes.
#[test]
fn limit_0_exports_a_header_and_an_empty_trailer() {
    let f = Fixture::clean(6);
    let run = f.run(&["export-jsonl", "--limit", "0"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(
        (&lines[0]["kind"], &lines[1]["kind"]),
        (&"header".into(), &"trailer".into())
    );
    assert_eq!(lines[1]["records"], 0);
    assert_eq!(
        lines[1]["sha256"],
        walctl::repair::hex(&Sha256::new().finalize())
    );
}

/// `-o -` is stdout, as in most Unix tools; no file named `-` appears.
#[test]
fn output_dash_is_stdout() {
    let f = Fixture::clean(3);
    let to_stdout = f.run(&["export-jsonl"]);
    let dash = f.run(&["export-jsonl", "-o", "-"]);
    assert_eq!((dash.code, dash.stderr.as_str()), (0, ""));
    let records = |run: &common::Run| -> Vec<String> {
        let lines: Vec<&str> = run.stdout.lines().collect();
        lines[1..lines.len() - 1]
            .iter()
            .map(|l| l.to_string())
            .collect()
    };
    assert_eq!(records(&dash), records(&to_stdout));
    assert_eq!(records(&dash).len(), 3);
    assert!(
        !f.tmp.path().join("-").exists(),
        "a file named - was written"
    );
}

#[test]
fn damage_exports_the_valid_records_and_exits_per_the_contract() {
    let f = Fixture::clean(4);
    f.flip_byte(common::clean_offset(3) + common::HEADER);
    let run = f.run(&["export-jsonl"]);
    assert_eq!(run.code, 3);
    let lines = json_lines(&run.stdout);
    let trailer = lines.last().unwrap();
    assert_eq!(
        (trailer["records"].as_u64(), trailer["status"].as_str()),
        (Some(3), Some("corrupt"))
    );
    assert_eq!(trailer["damage"][0]["kind"], "checksum");
    assert!(
        run.stderr
            .starts_with("walctl: corrupt damage in 00000000000000000001.wal"),
        "{}",
        run.stderr
    );
}

#[test]
fn export_of_a_missing_log_exits_2_and_leaves_no_file() {
    let f = Fixture::empty();
    let target = f.tmp.path().join("audit.jsonl");
    let run = f.run(&["export-jsonl", "-o", target.to_str().unwrap()]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("is not a walctl log"), "{}", run.stderr);
    assert!(!target.exists());
}
