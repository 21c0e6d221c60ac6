//! `walctl verify-export FILE`: an intact export holds (exit 0); an edited, truncated or padded
//! one does not (exit 3); a file that is no export at all cannot be checked (exit 2).

mod common;

use common::{Fixture, json};

/// A temp log with three records and its export in `<tmp>/audit.jsonl`.
fn exported() -> (Fixture, std::path::PathBuf) {
    let f = Fixture::clean(3);
    let target = f.tmp.path().join("audit.jsonl");
    assert_eq!(
        f.run(&["export-jsonl", "-o", target.to_str().unwrap()])
            .code,
        0
    );
    (f, target)
}

fn check(f: &Fixture, file: &std::path::Path, json_flag: bool) -> common::Run {
    let mut args = vec!["verify-export", file.to_str().unwrap()];
    if json_flag {
        args.push("--json");
    }
    f.run(&args)
}

#[test]
fn an_intact_export_holds() {
    let (f, target) = exported();
    let run = check(&f, &target, false);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let trailer = json(
        std::fs::read_to_string(&target)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    );
    assert_eq!(
        run.stdout,
        format!(
            "export holds: 3 records, sha256 {}\n",
            trailer["sha256"].as_str().unwrap()
        )
    );
}

#[test]
fn an_intact_export_holds_in_json_and_from_stdin() {
    let (f, target) = exported();
    let run = f.run_stdin(
        &["verify-export", "-", "--json"],
        std::fs::read(&target).unwrap(),
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let v = json(&run.stdout);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["records"], 3);
    assert_eq!(v["expected_records"], 3);
    assert_eq!(v["sha256"], v["expected_sha256"]);
    assert_eq!(v["problems"], serde_json::json!([]));
}

#[test]
fn an_edited_payload_breaks_the_digest() {
    let (f, target) = exported();
    let text = std::fs::read_to_string(&target)
        .unwrap()
        .replace("record-2", "record-X");
    std::fs::write(&target, text).unwrap();
    let run = check(&f, &target, true);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    let v = json(&run.stdout);
    assert_eq!(v["status"], "mismatch");
    assert_eq!(v["records"], 3);
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("the digest does not match")
    );
}

#[test]
fn a_dropped_record_breaks_count_and_digest() {
    let (f, target) = exported();
    let text = std::fs::read_to_string(&target).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&target, kept.join("\n") + "\n").unwrap();
    let run = check(&f, &target, false);
    assert_eq!(run.code, 3);
    assert!(
        run.stdout
            .starts_with("export does NOT hold:\n  the trailer says 3 records, the file holds 2\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_truncated_export_has_no_trailer() {
    let (f, target) = exported();
    let text = std::fs::read_to_string(&target).unwrap();
    std::fs::write(&target, &text[..text.len() - 40]).unwrap();
    let run = check(&f, &target, false);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    assert!(run.stdout.contains("not valid JSON"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("no trailer line: the export is incomplete"),
        "{}",
        run.stdout
    );
}

#[test]
fn data_after_the_trailer_is_reported() {
    let (f, target) = exported();
    let mut text = std::fs::read_to_string(&target).unwrap();
    text.push_str("{\"kind\":\"record\",\"seq\":4}\n");
    std::fs::write(&target, text).unwrap();
    let run = check(&f, &target, false);
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.contains("line 6: data after the trailer"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_file_that_is_no_export_exits_2() {
    let f = Fixture::empty();
    let path = f.tmp.path().join("notes.txt");
    std::fs::write(&path, "hello\n").unwrap();
    let run = check(&f, &path, false);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert_eq!(
        run.stderr,
        "walctl: checking <TMP>/notes.txt: the first line is not JSON: not a walctl export\n"
    );
    // A header line of the right kind but another schema, or of another kind, is no export.
    for header in [
        r#"{"kind":"header","schema":"something-else","version":1}"#,
        r#"{"kind":"record","schema":"walctl.export","version":1}"#,
    ] {
        std::fs::write(&path, format!("{header}\n")).unwrap();
        let run = check(&f, &path, false);
        assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{header}");
        assert!(
            run.stderr
                .contains("the first line is not a walctl export header"),
            "{header}: {}",
            run.stderr
        );
    }
    let missing = check(&f, &f.tmp.path().join("missing.jsonl"), false);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .starts_with("walctl: opening <TMP>/missing.jsonl: "),
        "{}",
        missing.stderr
    );
}

#[test]
fn records_out_of_order_or_without_seq_are_named_by_line() {
    // Swapping two record lines keeps the count; the digest breaks, and the line whose seq
    // goes back is named. A record line without a seq is named too.
    let (f, target) = exported();
    let text = std::fs::read_to_string(&target).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.swap(2, 3);
    lines[1] = lines[1].replace("\"seq\":1,", "");
    std::fs::write(&target, lines.join("\n") + "\n").unwrap();
    let run = check(&f, &target, true);
    assert_eq!(run.code, 3, "{run:?}");
    let problems = json(&run.stdout)["problems"].clone();
    let problems: Vec<&str> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for line in [2, 4] {
        let want = format!("line {line}: seq missing or not increasing");
        assert!(problems.contains(&want.as_str()), "{want}: {problems:?}");
    }
    assert!(
        !problems.iter().any(|p| p.starts_with("line 3:")),
        "{problems:?}"
    );
}
