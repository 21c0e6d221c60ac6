//! [`MemFile`]: one open file of a [`MemStorage`]. Reads and writes act on the live bytes;
//! writes are also queued as pending until `sync_data` makes them durable, which is what a
//! crash may drop or tear.

use super::{
    Contents, Fault, MemStorage, PendingWrite, StorageFile, TraceOp, apply_write, check,
    fault_error,
};
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub(super) struct MemFile {
    pub(super) storage: MemStorage,
    pub(super) ino: u64,
    pub(super) path: PathBuf,
    pub(super) writable: bool,
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        let st = self.storage.lock();
        Ok(st.inodes[&self.ino].live.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut st = self.storage.lock();
        check(st.begin(TraceOp::Read, &self.path, offset, buf.len() as u64))?;
        let live = &st.inodes[&self.ino].live;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start.checked_add(buf.len()).filter(|&e| e <= live.len());
        let Some(end) = end else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        buf.copy_from_slice(&live[start..end]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.storage.lock();
        if !self.writable {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let fault = st.begin(TraceOp::Write, &self.path, offset, buf.len() as u64);
        let stored = match fault {
            None => buf,
            Some(Fault::ShortWrite(n)) => &buf[..n.min(buf.len())],
            Some(f) => return Err(fault_error(f)),
        };
        let inode = st.inodes.get_mut(&self.ino).expect("open inode exists");
        apply_write(&mut inode.live, offset, stored);
        if let Some(view) = inode.disk_view.as_mut() {
            apply_write(view, offset, stored);
        }
        inode.pending.push(PendingWrite::Write {
            offset,
            data: stored.to_vec(),
        });
        check(fault)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.storage.lock();
        check(st.begin(TraceOp::SetLen, &self.path, len, 0))?;
        let inode = st.inodes.get_mut(&self.ino).expect("open inode exists");
        let new_len = usize::try_from(len).map_err(io::Error::other)?;
        inode.live.resize(new_len, 0);
        if let Some(view) = inode.disk_view.as_mut() {
            view.resize(new_len, 0);
        }
        inode.pending.push(PendingWrite::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.storage.lock();
        let fault = st.begin(TraceOp::SyncData, &self.path, 0, 0);
        let inode = st.inodes.get_mut(&self.ino).expect("open inode exists");
        match fault {
            None => {
                inode.durable = inode.disk_view.take().unwrap_or_else(|| inode.live.clone());
                inode.pending.clear();
                Ok(())
            }
            Some(Fault::FsyncGate) => {
                // The kernel drops the dirty state: the data never becomes durable, and the
                // next sync has nothing left to report, though reads still see the new bytes.
                inode.disk_view = Some(inode.durable.clone());
                inode.pending.clear();
                Err(fault_error(Fault::FsyncGate))
            }
            Some(f) => Err(fault_error(f)),
        }
    }

    fn contents(&self) -> io::Result<Contents> {
        let mut st = self.storage.lock();
        let len = st.inodes[&self.ino].live.len() as u64;
        check(st.begin(TraceOp::Read, &self.path, 0, len))?;
        Ok(Contents::Owned(st.inodes[&self.ino].live.clone()))
    }
}
