//! Integration tests of the library, one module per concern. The CLI has its own test files.
//!
//! Most tests run on `MemStorage`, which can simulate crashes and inject faults; the ones that
//! need real files or processes (locking, the golden file) use temporary directories.

mod compaction;
mod compaction_faults;
mod compaction_protocol;
mod concurrency;
mod condensed;
mod copy_checks;
mod crash;
mod decision_table;
mod degraded;
mod faults;
mod golden;
mod in_place;
mod kv;
mod layout;
mod lock;
mod marker;
mod model;
mod poison;
mod preallocated_tail;
mod protocol;
mod repair_report;
mod report_fields;
mod resume;
mod salvage;
mod scan_from;
mod sequences;
mod sweeps;
mod tail;
mod util;
mod versions;
mod write_ahead;
