//! `--help` of walctl and of every subcommand, pinned against the text files in `tests/help/`.
//!
//! Help is part of the interface people read at 3 a.m.; a change to it should be a reviewed diff.
//! After an intended change, regenerate the files with
//! `WALCTL_BLESS=1 cargo test --test cli_help` and commit them.

mod common;

use std::path::PathBuf;

/// Compares `walctl <args> --help` with `tests/help/<name>.txt`, or rewrites the file when
/// `WALCTL_BLESS` is set.
fn check_help(name: &str, args: &[&str]) {
    let run = common::run(common::walctl().args(args).arg("--help"));
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, ""),
        "walctl {args:?} --help"
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/help")
        .join(format!("{name}.txt"));
    if std::env::var_os("WALCTL_BLESS").is_some() {
        std::fs::write(&path, &run.stdout).expect("write the help snapshot");
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        pinned == run.stdout,
        "the help of `walctl {}` differs from {}; if the change is intended, run \
         `WALCTL_BLESS=1 cargo test --test cli_help` and commit the result.\n--- pinned\n{pinned}\n--- now\n{}",
        args.join(" "),
        path.display(),
        run.stdout
    );
}

macro_rules! pinned_help {
    ($($test:ident => $name:literal [$($arg:literal),*];)*) => {
        $(
            #[test]
            fn $test() {
                check_help($name, &[$($arg),*]);
            }
        )*
    };
}

pinned_help! {
    top_level_help_is_pinned => "walctl" [];
    append_help_is_pinned => "append" ["append"];
    sync_help_is_pinned => "sync" ["sync"];
    verify_help_is_pinned => "verify" ["verify"];
    dump_help_is_pinned => "dump" ["dump"];
    repair_help_is_pinned => "repair" ["repair"];
    compact_help_is_pinned => "compact" ["compact"];
    salvage_help_is_pinned => "salvage" ["salvage"];
    export_jsonl_help_is_pinned => "export-jsonl" ["export-jsonl"];
    verify_export_help_is_pinned => "verify-export" ["verify-export"];
    stat_help_is_pinned => "stat" ["stat"];
    get_help_is_pinned => "get" ["get"];
    generate_help_is_pinned => "generate" ["generate"];
}

#[test]
fn short_help_is_a_summary() {
    let run = common::run(common::walctl().arg("-h"));
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("Exit codes"), "{}", run.stdout);
    assert!(run.stdout.len() < common::run(common::walctl().arg("--help")).stdout.len());
}
