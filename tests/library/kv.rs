//! The key/value view through a writer: `get` refuses a damaged log and a record changed since
//! it was indexed, and the key index follows later appends.

use crate::util::{dir, key, options};
use walctl::storage::MemStorage;
use walctl::{Entry, ErrorKind, Log};

#[test]
fn get_through_a_writer_refuses_a_corrupt_log_rather_than_answer_from_part_of_it() {
    // Open reads only the last segment, so it succeeds on a log damaged further back; the key
    // index `get` builds reads everything, and a value from a damaged log may be stale.
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    for i in 0..60u32 {
        let value = vec![i as u8; 500];
        log.append_entry(&Entry::keyed(&key((i % 6) as u8), &value))
            .unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let first = crate::util::segments(&storage)[0].clone();
    crate::util::edit(&storage, &first, |b| b[12288 + 100] ^= 1);
    let log = Log::open(dir(), options(&storage)).unwrap();
    let err = log.get(&key(0)).unwrap_err();
    let ErrorKind::Corrupt { summary } = err.kind() else {
        panic!("{err}");
    };
    assert!(summary.contains("00000000000000000001.wal"), "{summary}");
    // The writer itself is not poisoned: appending needs only the last segment.
    log.append(b"still appends").unwrap();
}

#[test]
fn get_never_answers_from_a_record_that_changed_since_it_was_indexed() {
    // The index keeps where each key's value is; bytes changed under it afterwards (a disk
    // rotting, a hand edit) must be refused when read, not returned as the value.
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    log.append_entry(&Entry::keyed(&key(1), b"first")).unwrap();
    log.sync().unwrap();
    let indexed = log.get(&key(1)).unwrap().unwrap();
    let path = dir().join(walctl::segment::segment_name(indexed.location.segment));
    let at = (indexed.location.offset + u64::from(indexed.location.length) - 1) as usize;
    crate::util::edit(&storage, &path, |b| b[at] ^= 1);
    let err = log.get(&key(1)).unwrap_err();
    let ErrorKind::Corrupt { summary } = err.kind() else {
        panic!("{err}");
    };
    assert!(summary.contains("no longer checks out"), "{summary}");
    assert!(
        summary.contains(&format!("offset {}", indexed.location.offset)),
        "{summary}"
    );
}

#[test]
fn the_key_index_follows_appends_made_after_it_was_built() {
    // `get` builds the index once; every later append, single or batched (into an `out` that
    // already holds results), must update it with its own location.
    let storage = MemStorage::new();
    let log = Log::open(dir(), options(&storage)).unwrap();
    let value = |k: u8| log.get(&key(k)).unwrap().map(|r| r.payload);
    log.append_entry(&Entry::keyed(&key(1), b"v1")).unwrap();
    assert_eq!(value(1), Some(b"v1".to_vec()), "built here");
    log.append_entry(&Entry::keyed(&key(1), b"v2")).unwrap();
    assert_eq!(value(1), Some(b"v2".to_vec()));
    let mut out = Vec::new();
    log.append_batch(&[Entry::keyed(&key(2), b"w1")], None, &mut out)
        .unwrap();
    let (k1, k3) = (key(1), key(3));
    let batch = [Entry::keyed(&k1, b"v3"), Entry::keyed(&k3, b"x1")];
    log.append_batch(&batch, None, &mut out).unwrap();
    assert_eq!(
        [value(1), value(2), value(3)],
        [
            Some(b"v3".to_vec()),
            Some(b"w1".to_vec()),
            Some(b"x1".to_vec())
        ]
    );
}
