//! The writer's key/value view: [`Log::get`], served by an index that the first call builds
//! with one scan of the log and that appends keep current after that.

use super::Log;
use super::entry::{Appended, Entry};
use crate::error::{Error, ErrorKind, Result};
use crate::report::Record;
use std::sync::atomic::Ordering;

impl Log {
    /// The live value of `key` in the key/value view (last write wins; tombstones delete).
    ///
    /// The first call builds the index with one scan of the log; appends keep it current.
    ///
    /// # Errors
    ///
    /// I/O errors, or [`ErrorKind::Corrupt`] when the log or the indexed record is damaged.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>> {
        // Before the index lock: an append holds the state lock while it waits for the index.
        self.flush()?;
        let mut index = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if index.is_none() {
            // Appends wait for the index lock (index_appended), so none slips in between.
            let (built, report) = crate::kv::KeyIndex::build(&*self.options.storage, &self.dir)?;
            if report.verdict() == crate::Verdict::Corrupt {
                return Err(Error::new(ErrorKind::Corrupt {
                    summary: report.first_damage_summary(),
                }));
            }
            *index = Some(built);
            self.index_built.store(true, Ordering::Release);
        }
        let index = index.as_ref().expect("built above");
        index.read(&*self.options.storage, &self.dir, key)
    }

    /// Applies just-appended records to the index, once one is built (appends call it while
    /// they hold the state lock, so the index never misses or reorders a record).
    pub(super) fn index_appended(&self, entries: &[Entry<'_>], appended: &[Appended]) {
        let mut index = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(index) = index.as_mut() else { return };
        for (e, a) in entries.iter().zip(appended) {
            index.apply(&crate::report::RecordView {
                seq: a.seq,
                timestamp_nanos: 0,
                kind: e.kind,
                key: e.key,
                payload: e.payload,
                location: a.location,
                crc: 0,
            });
        }
    }
}
