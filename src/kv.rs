//! The key/value view: last write wins over the log.
//!
//! `get(key)` is the latest data record of the key unless a later tombstone deleted it. Keyless
//! records are log events and not part of the view. The index maps each live key to where its
//! latest record lives, not to its payload, so its memory is bounded by the keys: per live key,
//! the key bytes plus about 80 bytes (a boxed key of 16 bytes, 24 bytes of location and
//! sequence number, and the hash table's own slot and control bytes at its load factor). A
//! million 20-byte keys take about 100 MB. Values are read from the segment on demand and
//! checked against their CRC.

use crate::error::{Error, Result};
use crate::format::{self, Decoded, KEY_SIZE_LIMIT, RECORD_SIZE_LIMIT, RecordKind};
use crate::report::{Location, Record, RecordView, Report};

use crate::storage::Storage;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

/// Where the latest record of a live key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// Its sequence number.
    pub seq: u64,
    /// Its location.
    pub location: Location,
}

/// Index of the live keys of a log.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    entries: HashMap<Box<[u8]>, KeyEntry>,
}

impl KeyIndex {
    /// Builds the index with one scan of the log in `dir`; returns it with the scan's report.
    ///
    /// # Errors
    ///
    /// As [`crate::scan_log`]. Damage is in the report; the index then holds what the valid
    /// records say.
    pub fn build(storage: &dyn Storage, dir: &Path) -> Result<(KeyIndex, Report)> {
        KeyIndex::build_where(storage, dir, |_| true)
    }

    /// [`KeyIndex::build`] for one key only: the index holds that key or nothing, so a single
    /// lookup (`walctl get`) takes the same small memory however many keys the log holds.
    ///
    /// # Errors
    ///
    /// As [`KeyIndex::build`].
    pub fn build_for(storage: &dyn Storage, dir: &Path, key: &[u8]) -> Result<(KeyIndex, Report)> {
        KeyIndex::build_where(storage, dir, |k| k == key)
    }

    /// One scan applying the records whose key `keep` accepts.
    fn build_where(
        storage: &dyn Storage,
        dir: &Path,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<(KeyIndex, Report)> {
        let mut index = KeyIndex::default();
        let report = crate::scan_log(storage, dir, &mut |r| {
            if r.key.is_some_and(&keep) {
                index.apply(r);
            }
            ControlFlow::Continue(())
        })?;
        Ok((index, report))
    }

    /// Applies one record, in log order.
    pub fn apply(&mut self, r: &RecordView<'_>) {
        let Some(key) = r.key else { return };
        match r.kind {
            RecordKind::Data => {
                let entry = KeyEntry {
                    seq: r.seq,
                    location: r.location,
                };
                if let Some(slot) = self.entries.get_mut(key) {
                    *slot = entry;
                } else {
                    self.entries.insert(key.into(), entry);
                }
            }
            RecordKind::Tombstone => {
                self.entries.remove(key);
            }
        }
    }

    /// Where the live value of `key` is, if the key is live.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<KeyEntry> {
        self.entries.get(key).copied()
    }

    /// Number of live keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is live.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.keys().map(|k| &**k)
    }

    /// Reads and checks the record of a live key.
    ///
    /// # Errors
    ///
    /// I/O errors, or [`crate::ErrorKind::Corrupt`] when the bytes there no longer check out.
    pub fn read(&self, storage: &dyn Storage, dir: &Path, key: &[u8]) -> Result<Option<Record>> {
        let Some(entry) = self.get(key) else {
            return Ok(None);
        };
        read_at(storage, dir, entry.location, entry.seq).map(Some)
    }
}

/// Reads the record at `location` and checks it is the one with `seq`.
pub(crate) fn read_at(
    storage: &dyn Storage,
    dir: &Path,
    location: Location,
    seq: u64,
) -> Result<Record> {
    let crate::segment::Opened {
        path, file, header, ..
    } = crate::segment::open_with_header(storage, dir, location.segment)?;
    let corrupt = |why: &str| {
        Error::new(crate::ErrorKind::Corrupt {
            summary: format!("{} at offset {}: {why}", path.display(), location.offset),
        })
    };
    // A segment rewritten by a newer walctl since the index was built is refused as every
    // reader refuses it, not called damage.
    let header = header.map_err(|fault| {
        fault
            .unsupported(&path)
            .unwrap_or_else(|| corrupt("unreadable segment header"))
    })?;
    let mut bytes = vec![0u8; location.length as usize];
    file.read_at(&mut bytes, location.offset)
        .map_err(|e| Error::io("read", &path, e))?;
    let bind = format::binding(header.log_id, header.segment);
    match format::decode_record(&bytes, &bind, RECORD_SIZE_LIMIT, KEY_SIZE_LIMIT) {
        Decoded::Record(r) if r.meta.seq == seq => Ok(Record {
            seq,
            timestamp_nanos: r.meta.timestamp_nanos,
            kind: r.meta.kind,
            key: r.key.map(<[u8]>::to_vec),
            payload: r.payload.to_vec(),
            location,
            crc: r.crc,
        }),
        _ => Err(corrupt("the indexed record no longer checks out")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::{Entry, Log, Options};
    use std::sync::Arc;

    /// A log where `a` is written twice, `b` written then deleted, `c` written once, plus a
    /// keyless record.
    fn log() -> (MemStorage, &'static Path) {
        let storage = MemStorage::new();
        let dir = Path::new("/kv");
        let options = Options {
            storage: Arc::new(storage.clone()),
            ..Options::default()
        };
        let log = Log::open(dir, options).unwrap();
        log.append_entry(&Entry::keyed(b"a", b"a1")).unwrap();
        log.append_entry(&Entry::keyed(b"b", b"b1")).unwrap();
        log.append(b"no key").unwrap();
        log.append_entry(&Entry::keyed(b"c", b"c1")).unwrap();
        log.append_entry(&Entry::keyed(b"a", b"a2")).unwrap();
        log.append_entry(&Entry::tombstone(b"b")).unwrap();
        log.sync().unwrap();
        (storage, dir)
    }

    #[test]
    fn the_live_keys_are_those_written_and_not_deleted_since() {
        let (storage, dir) = log();
        let (index, _) = KeyIndex::build(&storage, dir).unwrap();
        let mut keys: Vec<&[u8]> = index.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, [&b"a"[..], b"c"]);
        assert!(!index.is_empty());
        let deleted = KeyIndex::build_for(&storage, dir, b"b").unwrap().0;
        assert!(deleted.is_empty());
    }

    /// An index entry is only trusted while the record at its place has its sequence number:
    /// another record there (the log was rewritten since the index was built) is refused.
    #[test]
    fn a_record_at_the_indexed_place_with_another_sequence_number_is_refused() {
        let (storage, dir) = log();
        let a = KeyIndex::build(&storage, dir).unwrap().0.get(b"a").unwrap();
        assert_eq!(
            read_at(&storage, dir, a.location, a.seq).unwrap().seq,
            a.seq
        );
        let err = read_at(&storage, dir, a.location, a.seq + 1).unwrap_err();
        assert!(
            matches!(err.kind(), crate::ErrorKind::Corrupt { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no longer checks out"), "{err}");
    }

    #[test]
    fn an_index_for_one_key_holds_that_key_as_the_whole_index_does() {
        let (storage, dir) = log();
        let (whole, _) = KeyIndex::build(&storage, dir).unwrap();
        assert_eq!(whole.len(), 2);
        for key in [&b"a"[..], b"b", b"c", b"absent", b""] {
            let (one, report) = KeyIndex::build_for(&storage, dir, key).unwrap();
            assert_eq!(report.records, 6);
            assert!(one.len() <= 1, "{key:?}");
            assert_eq!(one.get(key), whole.get(key), "{key:?}");
            assert_eq!(
                one.read(&storage, dir, key).unwrap(),
                whole.read(&storage, dir, key).unwrap()
            );
        }
        let latest = KeyIndex::build_for(&storage, dir, b"a").unwrap().0;
        let a = latest.read(&storage, dir, b"a").unwrap().unwrap();
        assert_eq!((a.seq, a.payload.as_slice()), (5, &b"a2"[..]));
    }
}
