//! Which runs wrote an archive's interval files, and which of those runs are still going.
//!
//! A driver with checkpoints (an engine, a scale-out task, the roll-up) names each run of its
//! writer by a random token, which goes into its file names and into the checkpoints it lands
//! ([`vigil_core::ArchiveLog`]). While it runs it holds an exclusive lock on
//! `ROOT/.writers/<tag>.<token>`; the operating system releases the lock when the process ends,
//! `kill -9` included. A writer whose lock can be taken (or whose lock file is gone) has ended,
//! and its files can be judged by a checkpoint's log; a live writer's are never touched, even by
//! a process that shares the directory (another instance on the same machine, or on a shared
//! volume whose file system honours locks).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::path::{Path, PathBuf};

/// The directory of the lock files, hidden from DataFusion's listings.
pub const WRITERS: &str = ".writers";

/// A fresh token: random per process and per call (`RandomState` is seeded from the operating
/// system), mixed with the process id and the time so that two machines differ too.
pub fn new_token() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((std::process::id(), nanos))
}

fn lock_path(root: &Path, tag: &str, token: u64) -> PathBuf {
    root.join(WRITERS).join(format!("{tag}.{token:016x}"))
}

/// The lock a running writer holds; dropping it (the writer finished) removes its file.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock of a new writer. The file is locked under a temporary name and then
    /// renamed into place, so that no one ever sees it unlocked while its writer lives.
    pub fn take(root: &Path, tag: &str, token: u64) -> io::Result<WriterLock> {
        let dir = root.join(WRITERS);
        fs::create_dir_all(&dir)?;
        let path = lock_path(root, tag, token);
        let tmp = dir.join(format!(".{tag}.{token:016x}.tmp"));
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&tmp)?;
        file.try_lock().map_err(|e| io::Error::other(format!("{}: {e}", tmp.display())))?;
        fs::rename(&tmp, &path)?;
        Ok(WriterLock { file, path })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Unlinked while still locked: a reader that opened it just before sees it locked.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// A writer found to have ended, holding its lock file (when there is one) until its files
/// have been judged; [`Ended::forget`] then removes that file.
pub struct Ended {
    held: Option<(File, PathBuf)>,
}

impl Ended {
    pub fn forget(self) {
        if let Some((file, path)) = self.held {
            let _ = fs::remove_file(&path);
            drop(file);
        }
    }
}

/// The tokens of `tag`'s lock files: the runs that wrote here (or began to), ended or not.
pub fn tokens(root: &Path, tag: &str) -> io::Result<Vec<u64>> {
    let dir = root.join(WRITERS);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::other(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        if let Some(t) =
            name.to_string_lossy().strip_prefix(tag).and_then(|r| r.strip_prefix('.')).and_then(parse_token)
        {
            out.push(t);
        }
    }
    Ok(out)
}

/// Sixteen lower-case hex digits, as tokens are written.
pub fn parse_token(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// `Some` when writer `token` of `tag` has ended (its lock taken here, so that it stays ended
/// while its files are judged), `None` while it runs.
pub fn ended(root: &Path, tag: &str, token: u64) -> io::Result<Option<Ended>> {
    let path = lock_path(root, tag, token);
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Ended { held: None })),
        Err(e) => return Err(io::Error::other(format!("{}: {e}", path.display()))),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(Ended { held: Some((file, path)) })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(io::Error::other(format!("{}: {e}", path.display()))),
    }
}
