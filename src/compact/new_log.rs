//! The new log a compaction writes: temporary segment files beside the old ones, each sealed
//! with its final watermark and fdatasynced before `install.rs` may switch to them. A rewrite
//! packs the survivors into segments numbered after the old ones; a compaction in place writes
//! the survivors of one old segment into a temporary under that segment's own number.

use crate::error::{Error, Result};
use crate::format::{
    self, FORMAT_VERSION, RecordMeta, SEGMENT_DATA_START, SEGMENT_FLAG_COMPACTED, SegmentHeader,
    WatermarkSlot,
};
use crate::options::Options;
use crate::repair::sync_dir;
use crate::report::RecordView;
use crate::segment::temp_name;
use crate::storage::{OpenMode, Storage, StorageFile};
use std::path::Path;
use std::sync::Arc;

/// The new log being written as temporary segment files.
pub(super) struct NewLog<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    segment_size: u64,
    log_id: u64,
    log_first_seq: u64,
    next_number: u64,
    current: Option<NewSegment>,
    /// Where the records go: the same rule a dry run plans by.
    layout: Layout,
    /// Encoded records of the current segment not yet written: one write per `WRITE_CHUNK`
    /// instead of one per record, which on a log of small records was one system call each.
    buf: Vec<u8>,
    /// One segment replacing an old one of the same number: never split by the layout, since
    /// its records are a subset of what that segment held.
    in_place: bool,
}

/// Bytes gathered before a write to the new segment.
const WRITE_CHUNK: usize = 1 << 20;

struct NewSegment {
    /// Its header: its number, and the binding of its records and watermark slot.
    header: SegmentHeader,
    file: Arc<dyn StorageFile>,
    /// Length including the records still in `NewLog::buf`.
    len: u64,
    /// Bytes handed to the file so far.
    written: u64,
    last_seq: Option<u64>,
}

/// Where a compaction's records fall among its new segments: a record that would take a
/// segment holding records past the segment size starts the next one. [`NewLog`] writes by
/// it, and a dry run plans the new log's size by it alone.
#[derive(Debug, Default)]
pub(super) struct Layout {
    /// Bytes of the segment being filled (0 before the first record) and of those before it.
    current: u64,
    sealed: u64,
    segments: u64,
}

impl Layout {
    /// Places the next surviving record; true when it starts a new segment.
    pub(super) fn push(&mut self, r: &RecordView<'_>, segment_size: u64) -> bool {
        let size = format::encoded_len(r.key.map_or(0, <[u8]>::len), r.payload.len()) as u64;
        if self.current > 0 && self.current + size > segment_size {
            self.sealed += self.current;
            self.current = 0;
        }
        let starts = self.current == 0;
        if starts {
            self.segments += 1;
            self.current = SEGMENT_DATA_START;
        }
        self.current += size;
        starts
    }

    /// Bytes and segment files of the new log, with the empty segment [`NewLog::finish`] adds.
    pub(super) fn totals(&self) -> (u64, u64) {
        (
            self.sealed + self.current + SEGMENT_DATA_START,
            self.segments + 1,
        )
    }
}

impl<'a> NewLog<'a> {
    pub(super) fn new(
        storage: &'a dyn Storage,
        dir: &'a Path,
        options: &Options,
        log_id: u64,
        first_number: u64,
        log_first_seq: u64,
    ) -> NewLog<'a> {
        NewLog {
            storage,
            dir,
            segment_size: options.segment_size,
            log_id,
            log_first_seq,
            next_number: first_number,
            current: None,
            layout: Layout::default(),
            buf: Vec::new(),
            in_place: false,
        }
    }

    /// Starts the replacement of segment `number`, as `number.wal.tmp`: compacted, with the old
    /// segment's `first_seq` so that the segment before it still leads into it exactly. Returns
    /// it with its `created_nanos`, which differs from the old segment's: the header tells the
    /// replacement from the segment it replaces (`install.rs`).
    pub(super) fn in_place(
        storage: &'a dyn Storage,
        dir: &'a Path,
        options: &Options,
        header: &SegmentHeader,
        log_first_seq: u64,
    ) -> Result<(NewLog<'a>, u64)> {
        let mut log = NewLog::new(
            storage,
            dir,
            options,
            header.log_id,
            header.segment,
            log_first_seq,
        );
        log.in_place = true;
        let now = crate::time::now_nanos();
        let created = if now == header.created_nanos {
            now + 1
        } else {
            now
        };
        log.start_at(header.first_seq, SEGMENT_FLAG_COMPACTED, created)?;
        Ok((log, created))
    }

    pub(super) fn push(&mut self, r: &RecordView<'_>) -> Result<()> {
        if !self.in_place && self.layout.push(r, self.segment_size) {
            self.seal()?;
            self.start(r.seq, SEGMENT_FLAG_COMPACTED)?;
        }
        let seg = self.current.as_mut().expect("the layout started a segment");
        let before = self.buf.len();
        let meta = RecordMeta {
            seq: r.seq,
            timestamp_nanos: r.timestamp_nanos,
            kind: r.kind,
        };
        format::encode_record(
            &mut self.buf,
            &format::binding(self.log_id, seg.header.segment),
            meta,
            r.key,
            r.payload,
        );
        seg.len += (self.buf.len() - before) as u64;
        seg.last_seq = Some(r.seq);
        debug_assert!(
            self.in_place || seg.len == self.layout.current,
            "the encoder and the layout disagree"
        );
        if self.buf.len() >= WRITE_CHUNK {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Writes the gathered records at the end of the current segment.
    fn write_buffered(&mut self) -> Result<()> {
        let Some(seg) = self.current.as_mut() else {
            return Ok(());
        };
        if !self.buf.is_empty() {
            let path = self.dir.join(temp_name(seg.header.segment));
            seg.file
                .write_at(&self.buf, seg.written)
                .map_err(|e| Error::io_at("write", &path, seg.written, e))?;
            seg.written += self.buf.len() as u64;
            self.buf.clear();
        }
        debug_assert_eq!(seg.written, seg.len, "every record handed to the file");
        Ok(())
    }

    fn start(&mut self, first_seq: u64, flags: u32) -> Result<()> {
        self.start_at(first_seq, flags, crate::time::now_nanos())
    }

    fn start_at(&mut self, first_seq: u64, flags: u32, created_nanos: u64) -> Result<()> {
        let number = self.next_number;
        self.next_number += 1;
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            flags,
            log_id: self.log_id,
            segment: number,
            first_seq,
            log_first_seq: self.log_first_seq,
            created_nanos,
        };
        let path = self.dir.join(temp_name(number));
        let file = self
            .storage
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &path, e))?;
        let mut preamble = header.encode().to_vec();
        preamble.resize(SEGMENT_DATA_START as usize, 0);
        file.write_at(&preamble, 0)
            .map_err(|e| Error::io("write", &path, e))?;
        self.current = Some(NewSegment {
            header,
            file,
            len: SEGMENT_DATA_START,
            written: SEGMENT_DATA_START,
            last_seq: None,
        });
        Ok(())
    }

    /// Writes the final watermark of the current segment and syncs it.
    fn seal(&mut self) -> Result<()> {
        self.write_buffered()?;
        let Some(seg) = self.current.take() else {
            return Ok(());
        };
        let path = self.dir.join(temp_name(seg.header.segment));
        if let Some(last) = seg.last_seq {
            // The first slot write of a new segment: generation 1.
            let (at, slot) = WatermarkSlot::placed(&seg.header, 1, last, seg.len);
            seg.file
                .write_at(&slot, at)
                .map_err(|e| Error::io_at("write", &path, at, e))?;
        }
        seg.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &path, e))?;
        Ok(())
    }

    /// Seals the replacement segment; returns its length.
    pub(super) fn finish_in_place(mut self) -> Result<u64> {
        debug_assert!(self.in_place, "only a replacement is finished alone");
        self.write_buffered()?;
        let len = self.current.as_ref().map_or(0, |s| s.len);
        self.seal()?;
        Ok(len)
    }

    /// Seals the last compacted segment and adds the empty segment that appends continue in,
    /// starting at the old log's next sequence number so none is ever reused; fsyncs the
    /// directory. Returns the number of that last segment.
    pub(super) fn finish(mut self, next_seq: u64) -> Result<u64> {
        self.seal()?;
        self.start(next_seq, 0)?;
        let last = self.current.as_ref().expect("started above").header.segment;
        self.seal()?;
        sync_dir(self.storage, self.dir)?;
        Ok(last)
    }
}
