//! Which runs wrote an archive's interval files, and which of those runs are still going.
//!
//! A driver with checkpoints (an engine, a scale-out task, the roll-up) names each run of its
//! writer by a random token, which goes into its file names and into the checkpoints it lands
//! ([`vigil_core::ArchiveLog`]). While it runs it holds an exclusive lock on
//! `ROOT/.writers/<tag>.<token>`; the operating system releases the lock when the process ends,
//! `kill -9` included. The file stays unless the run finished cleanly (its last checkpoint
//! landed), so a lock file whose lock can be taken marks a run that ended without finishing:
//! its files may need judging by a checkpoint's log. Whoever judges takes the lock first and
//! holds it until done, so that no one else judges the run meanwhile; a live writer's files are
//! never touched, even by a process that shares the directory (another instance on the same
//! machine, or on a shared volume whose file system honours locks).

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

/// The lock a running writer holds. Dropped, it is released, and its file removed only when
/// [`WriterLock::finish`] said the run finished cleanly.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
    finished: bool,
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
        Ok(WriterLock { file, path, finished: false })
    }

    /// Every file of the run is covered by its last checkpoint, which has landed: nothing of it
    /// needs judging.
    pub fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Unlinked while still locked: a reader that opened it just before sees it locked,
        // and then finds it gone.
        if self.finished {
            let _ = fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

/// A run found to have ended without finishing, its lock held here until its files have been
/// judged; [`Ended::forget`] then removes its lock file (dropped, it is only released).
#[derive(Debug)]
pub struct Ended {
    _file: File,
    path: PathBuf,
}

impl Ended {
    pub fn forget(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The (tag, token) of every lock file under `root`: the runs that wrote there (or began to),
/// ended or not.
fn lock_files(root: &Path) -> io::Result<Vec<(String, u64)>> {
    let dir = root.join(WRITERS);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::other(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        // Hidden: a lock file still being put in place.
        if name.starts_with('.') {
            continue;
        }
        if let Some((tag, token)) = name.rsplit_once('.')
            && let Some(t) = parse_token(token)
        {
            out.push((tag.to_string(), t));
        }
    }
    Ok(out)
}

/// The tokens of `tag`'s lock files.
pub fn tokens(root: &Path, tag: &str) -> io::Result<Vec<u64>> {
    Ok(lock_files(root)?.into_iter().filter(|(t, _)| t == tag).map(|(_, token)| token).collect())
}

/// Sixteen lower-case hex digits, as tokens are written.
pub fn parse_token(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// `Some` when run `token` of `tag` ended without finishing (its lock taken here), `None` while
/// it runs or once it finished (its lock file gone).
pub fn ended(root: &Path, tag: &str, token: u64) -> io::Result<Option<Ended>> {
    let path = lock_path(root, tag, token);
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::other(format!("{}: {e}", path.display()))),
    };
    match file.try_lock() {
        // Opened just as its run finished and removed it: nothing to judge.
        Ok(()) if !path.exists() => Ok(None),
        Ok(()) => Ok(Some(Ended { _file: file, path })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(io::Error::other(format!("{}: {e}", path.display()))),
    }
}

/// How many runs of any driver under `root` ended without finishing and have not been judged
/// yet (their lock files left, unlocked): until they are, the archive may hold rows that no
/// checkpoint covers and that another archive holds too.
pub fn unjudged(root: &Path) -> io::Result<usize> {
    let mut n = 0;
    for (tag, token) in lock_files(root)? {
        n += usize::from(ended(root, &tag, token)?.is_some());
    }
    Ok(n)
}
