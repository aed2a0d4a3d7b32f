//! Checkpoints: the pipeline's state, the watermarks and the next offset of every partition,
//! written together so that a restart resumes exactly where the state was taken (offsets live
//! in the checkpoint, Flink style). A checkpoint is written to a temporary file, synced and
//! renamed over the last one, which is kept as `checkpoint.prev`; a corrupt or truncated file is
//! detected by its checksum and the previous one is used instead, with a warning. Files are
//! LZ4-compressed as a state topic's records are (most of a state is rings of quiet regions:
//! a tenth of the bytes to write and sync every interval); uncompressed files of earlier
//! versions are still read.
//!
//! In exactly-once mode each checkpoint carries the number of the Kafka transaction that
//! commits its interval's outputs, and a restart resumes from the checkpoint whose transaction
//! the group last committed (see [`read_committed`]): the file is written before the
//! transaction commits, so after a crash between the two the newest file is one step ahead of
//! what consumers saw, and the previous one is the right one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_core::ArchiveLog;
use vigil_window::Watermarks;

/// Format version of checkpoint files.
pub const CHECKPOINT_FORMAT: u32 = 3;
const MAGIC: &[u8; 8] = b"VIGILCP\x01";
/// A file holding an encoded checkpoint (the magic above and the rest) compressed by [`compress`].
const MAGIC_LZ4: &[u8; 8] = b"VIGILCZ\x01";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub rules_version: String,
    /// (topic, partition) in assignment order, with the next offset to read.
    pub offsets: Vec<(String, i32, i64)>,
    pub watermarks: Watermarks,
    /// `Pipeline::snapshot` bytes.
    pub pipeline: Vec<u8>,
    /// In exactly-once mode, the number of the transaction that commits this checkpoint's
    /// interval (1, 2, ... per checkpoint directory); `None` in at-least-once mode.
    pub txn: Option<u64>,
    /// In exactly-once mode, the last transaction known committed when this checkpoint was
    /// written: a commit topic that shows less has lost records, and resuming by it would
    /// publish committed intervals again.
    pub after: Option<u64>,
    /// The archive writers of this driver's runs and how far each one's files are covered
    /// (empty without an archive).
    pub archive: ArchiveLog,
}

/// Format 2: the same without `archive`.
#[derive(Deserialize)]
struct CheckpointV2 {
    _format: u32,
    rules_version: String,
    offsets: Vec<(String, i32, i64)>,
    watermarks: Watermarks,
    pipeline: Vec<u8>,
    txn: Option<u64>,
    after: Option<u64>,
}

/// Format 1: the same without `txn` (read, so that an upgrade resumes where it stopped).
#[derive(Deserialize)]
struct CheckpointV1 {
    // Postcard is positional: the leading format number is read and checked before.
    _format: u32,
    rules_version: String,
    offsets: Vec<(String, i32, i64)>,
    watermarks: Watermarks,
    pipeline: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {at} is corrupt or truncated ({why}) and there is no good previous checkpoint")]
    Corrupt { at: String, why: String },
    #[error(
        "the consumer group last committed the outputs of checkpoint {txn}, which the {store} does not hold \
         ({held}): it belongs to another group or was restored from an older copy. Restore the matching state, or \
         start over with empty state and a new consumer group"
    )]
    NotCommitted { store: String, txn: u64, held: String },
    #[error(
        "the {store} was written after transaction {after} committed, but the commit topic shows {shown}: its \
         records were lost (deleted, expired, or another topic is configured). vigil will not guess; restore the \
         commit topic, or start over with empty state and a new consumer group"
    )]
    CommitsMissing { store: String, after: u64, shown: String },
    #[error(
        "checkpoint directory {dir} is in use by another vigil instance (it holds {dir}/lock): one instance per \
         directory; stop the other one, or give this one its own directory and consumer group"
    )]
    Locked { dir: PathBuf },
    #[error("state topic {topic}: {why}")]
    Topic { topic: String, why: String },
}

/// An exclusive lock on a checkpoint directory, held for as long as the engine runs (released
/// by the operating system if the process dies): two instances writing one directory would
/// overwrite each other's state.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes the lock, or says who holds it. It is taken before anything else happens, before
    /// an exactly-once instance registers its producer (which would fence the holder off).
    pub fn acquire(dir: &Path) -> Result<DirLock, CheckpointError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("lock");
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(CheckpointError::Locked { dir: dir.into() }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn current(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

fn previous(dir: &Path) -> PathBuf {
    dir.join("checkpoint.prev")
}

/// Writes a checkpoint atomically; returns its size in bytes.
pub fn write(dir: &Path, cp: &Checkpoint) -> Result<u64, CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let raw = encode(cp).map_err(|e| CheckpointError::Io { path: dir.into(), source: std::io::Error::other(e) })?;
    let mut bytes = MAGIC_LZ4.to_vec();
    bytes.extend(compress(&raw));
    let tmp = dir.join("checkpoint.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    // The current checkpoint becomes the previous one through a second name (a hard link), and
    // the new one replaces it in one rename: a kill at any point leaves a current checkpoint,
    // old or new, never a gap in which a restart would find none and start from scratch.
    let cur = current(dir);
    let prev = previous(dir);
    if cur.exists() {
        match std::fs::remove_file(&prev) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&prev)(e)),
            _ => {}
        }
        // A file system without hard links gets a copy instead (the same guarantee, slower).
        std::fs::hard_link(&cur, &prev).or_else(|_| std::fs::copy(&cur, &prev).map(|_| ())).map_err(io(&prev))?;
    }
    std::fs::rename(&tmp, &cur).map_err(io(&cur))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// A checkpoint as stored, in a file or in a state topic's records: a magic number, the body's
/// length and checksum, then the body (postcard), so that a torn or mixed copy is recognised.
pub fn encode(cp: &Checkpoint) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_allocvec(cp)?;
    let mut bytes = Vec::with_capacity(body.len() + 24);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&fnv(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Makes the directory's entries (the renames) durable: in exactly-once mode a transaction
/// commits right after, and a rename lost to a power cut would leave the directory behind it.
fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: dir.into(), source };
    std::fs::File::open(dir).map_err(io)?.sync_all().map_err(io)
}

/// Makes the previous checkpoint the current one again, leaving it in place as the previous
/// one too: at no moment is the only copy of the committed checkpoint being rewritten.
fn restore_previous(dir: &Path) -> Result<(), CheckpointError> {
    let (prev, tmp, cur) = (previous(dir), dir.join("checkpoint.tmp"), current(dir));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    std::fs::copy(&prev, &tmp).map_err(io(&tmp))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &cur).map_err(io(&cur))?;
    sync_dir(dir)
}

/// An encoded checkpoint as a state topic's records and a checkpoint file hold it: the length
/// uncompressed, then LZ4 blocks.
pub(crate) fn compress(raw: &[u8]) -> Vec<u8> {
    let mut out = (raw.len() as u64).to_le_bytes().to_vec();
    out.extend(lz4_flex::block::compress(raw));
    out
}

/// The inverse of [`compress`]; a length LZ4 could not have produced from these bytes (at most
/// 255 times their size) is refused before anything is allocated for it.
pub(crate) fn decompress(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (len, body) = bytes.split_at_checked(8).ok_or("shorter than its header")?;
    let len = u64::from_le_bytes(len.try_into().unwrap_or_default());
    if len > 255 * body.len() as u64 + 16 {
        return Err(format!("claims {len} bytes from {} compressed ones", body.len()));
    }
    let mut raw = vec![0u8; len as usize];
    let n = lz4_flex::block::decompress_into(body, &mut raw).map_err(|e| format!("not LZ4: {e}"))?;
    if n != raw.len() {
        return Err(format!("{n} bytes of {len}"));
    }
    Ok(raw)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err("not a vigil checkpoint".into());
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| "header")?) as usize;
    let sum = u64::from_le_bytes(bytes[16..24].try_into().map_err(|_| "header")?);
    let body = &bytes[24..];
    if body.len() != len {
        return Err(format!("{} bytes of {len}", body.len()));
    }
    if fnv(body) != sum {
        return Err("checksum mismatch".into());
    }
    let (format, _) = postcard::take_from_bytes::<u32>(body).map_err(|e| e.to_string())?;
    let cp = match format {
        1 => {
            let v1: CheckpointV1 = postcard::from_bytes(body).map_err(|e| e.to_string())?;
            Checkpoint {
                format: CHECKPOINT_FORMAT,
                rules_version: v1.rules_version,
                offsets: v1.offsets,
                watermarks: v1.watermarks,
                pipeline: v1.pipeline,
                txn: None,
                after: None,
                archive: ArchiveLog::default(),
            }
        }
        2 => {
            let v2: CheckpointV2 = postcard::from_bytes(body).map_err(|e| e.to_string())?;
            Checkpoint {
                format: CHECKPOINT_FORMAT,
                rules_version: v2.rules_version,
                offsets: v2.offsets,
                watermarks: v2.watermarks,
                pipeline: v2.pipeline,
                txn: v2.txn,
                after: v2.after,
                archive: ArchiveLog::default(),
            }
        }
        CHECKPOINT_FORMAT => postcard::from_bytes(body).map_err(|e| e.to_string())?,
        other => return Err(format!("format {other} is not {CHECKPOINT_FORMAT}")),
    };
    Ok(cp)
}

/// A stored checkpoint as read: absent, unusable (and why), or good.
pub(crate) type Loaded = Option<Result<Checkpoint, String>>;

/// The two newest checkpoints of a store, newest first, with their names in messages.
pub(crate) struct Pair {
    /// What holds them ("checkpoint directory /x", "state topic t (key k)").
    pub store: String,
    /// In warnings (a file's path, a slot's key and topic).
    pub names: [String; 2],
    /// In the list of what the store holds ("checkpoint", "checkpoint.prev", a slot's key).
    pub labels: [String; 2],
    pub files: [Loaded; 2],
}

fn load_file(p: &Path) -> Result<Loaded, CheckpointError> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(match b.strip_prefix(MAGIC_LZ4) {
            Some(packed) => decompress(packed).and_then(|raw| decode(&raw)),
            // Written uncompressed, before checkpoint files were compressed.
            None => decode(&b),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io { path: p.into(), source }),
    }
}

/// The pair of `dir`; the previous file is read only when `both` or the current one is not
/// good (a start from a good current file does not depend on the previous one being readable).
pub(crate) fn load_dir(dir: &Path, both: bool) -> Result<Pair, CheckpointError> {
    let (cur, prev) = (current(dir), previous(dir));
    let first = load_file(&cur)?;
    let second = if both || !matches!(first, Some(Ok(_))) { load_file(&prev)? } else { None };
    Ok(Pair {
        store: format!("checkpoint directory {}", dir.display()),
        names: [cur.display().to_string(), prev.display().to_string()],
        labels: ["checkpoint".into(), "checkpoint.prev".into()],
        files: [first, second],
    })
}

/// Reads the newest good checkpoint of `dir`: `None` when there is none. A bad newest file is
/// reported through `warn` and the previous one used.
pub fn read(dir: &Path, warn: &mut dyn FnMut(String)) -> Result<Option<Checkpoint>, CheckpointError> {
    newest(load_dir(dir, false)?, warn)
}

/// The newest good checkpoint of `pair`.
pub(crate) fn newest(pair: Pair, warn: &mut dyn FnMut(String)) -> Result<Option<Checkpoint>, CheckpointError> {
    let Pair { names: [cur, _], files: [a, b], .. } = pair;
    match a {
        // Only a store written by an older vigil can lack the current checkpoint while holding
        // a previous one.
        None => match b {
            Some(Ok(cp)) => {
                warn(format!("checkpoint {cur} is missing; resuming from the previous one"));
                Ok(Some(cp))
            }
            _ => Ok(None),
        },
        Some(Ok(cp)) => Ok(Some(cp)),
        Some(Err(why)) => {
            warn(format!("checkpoint {cur} is unusable ({why}); trying the previous one"));
            match b {
                Some(Ok(cp)) => Ok(Some(cp)),
                _ => Err(CheckpointError::Corrupt { at: cur, why }),
            }
        }
    }
}

/// What a restart in exactly-once mode resumes from.
#[derive(Debug)]
pub struct Resolved {
    /// The checkpoint whose interval the group last committed; `None`: start from the beginning.
    pub checkpoint: Option<Checkpoint>,
    /// The highest transaction number any checkpoint of the store carries: numbers continue
    /// from it, so that no two checkpoints ever share one.
    pub last_txn: u64,
    /// Whether the previous checkpoint was chosen: the store must make it current again, so
    /// that the next checkpoint written replaces the other one.
    pub(crate) stepped_back: bool,
}

/// Reads the checkpoint that matches the transaction the group last committed (`committed`,
/// from the commit topic): the current file, or the previous one when the current one was
/// written but its transaction did not commit (the previous one is then made current again). A
/// newest checkpoint written in at-least-once mode (the mode was switched) is resumed as it is.
/// With nothing committed, only an at-least-once checkpoint is resumed. A directory written
/// after a commit that the topic no longer shows is refused.
pub fn read_committed(
    dir: &Path,
    committed: Option<u64>,
    warn: &mut dyn FnMut(String),
) -> Result<Resolved, CheckpointError> {
    let resolved = committed_of(load_dir(dir, true)?, committed, warn)?;
    if resolved.stepped_back {
        restore_previous(dir)?;
    }
    Ok(resolved)
}

/// The checkpoint of `pair` that matches the transaction the group last committed (see
/// [`read_committed`]); the caller makes the previous one current when `stepped_back`.
pub(crate) fn committed_of(
    pair: Pair,
    committed: Option<u64>,
    warn: &mut dyn FnMut(String),
) -> Result<Resolved, CheckpointError> {
    let Pair { store, names, labels, files } = pair;
    let good = |i: usize| match &files[i] {
        Some(Ok(cp)) => Some(cp),
        _ => None,
    };
    let last_txn = (0..2).filter_map(|i| good(i)?.txn).chain(committed).max().unwrap_or(0);
    if let Some(after) = (0..2).filter_map(|i| good(i)?.after).max()
        && committed.is_none_or(|c| c < after)
    {
        let shown = committed.map_or("none".to_string(), |c| format!("only transaction {c}"));
        return Err(CheckpointError::CommitsMissing { store, after, shown });
    }
    if let Some(Err(why)) = &files[0] {
        warn(format!("checkpoint {} is unusable ({why}); trying the previous one", names[0]));
    }
    let held = labels
        .iter()
        .zip(&files)
        .map(|(name, f)| match f {
            None => format!("no {name}"),
            Some(Err(why)) => format!("{name} unusable: {why}"),
            Some(Ok(cp)) => match cp.txn {
                Some(t) => format!("{name} of transaction {t}"),
                None => format!("{name} of at-least-once mode"),
            },
        })
        .collect::<Vec<_>>()
        .join(", ");
    // The newest good checkpoint of at-least-once mode was written after every transaction.
    let newest_plain = match (good(0), good(1)) {
        (Some(c), _) if c.txn.is_none() => Some(0),
        (None, Some(p)) if p.txn.is_none() => Some(1),
        _ => None,
    };
    let chosen = newest_plain.or_else(|| (0..2).find(|&i| good(i).is_some_and(|cp| cp.txn == committed)));
    let Some(i) = chosen else {
        if let Some(txn) = committed {
            return Err(CheckpointError::NotCommitted { store, txn, held });
        }
        if let Some(Err(why)) = &files[0] {
            return Err(CheckpointError::Corrupt { at: names[0].clone(), why: why.clone() });
        }
        if last_txn > 0 {
            warn(format!(
                "checkpoints in the {store} were written, but the consumer group has committed none of their \
                 transactions: starting from the beginning of the topics"
            ));
        }
        return Ok(Resolved { checkpoint: None, last_txn, stepped_back: false });
    };
    if i == 1 {
        let why = if good(0).is_some() { "was written but its transaction did not commit" } else { "is unusable" };
        warn(format!("checkpoint {} {why}; resuming from the previous one", names[0]));
    }
    let [a, b] = files;
    let Some(Ok(cp)) = (if i == 0 { a } else { b }) else {
        return Err(CheckpointError::Corrupt { at: names[0].clone(), why: "changed while it was read".into() });
    };
    Ok(Resolved { checkpoint: Some(cp), last_txn, stepped_back: i == 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(txn: Option<u64>, offset: i64) -> Checkpoint {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            rules_version: "r".into(),
            offsets: vec![("t".into(), 0, offset)],
            watermarks: Watermarks::new(&[0]),
            pipeline: vec![1, 2, 3],
            txn,
            after: txn.and_then(|t| t.checked_sub(1)).filter(|&a| a > 0),
            archive: ArchiveLog::default(),
        }
    }

    /// An empty checkpoint directory, removed when dropped.
    struct Scratch(tempfile::TempDir);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            self.0.path()
        }
    }

    fn dir(name: &str) -> Scratch {
        Scratch(tempfile::Builder::new().prefix(&format!("vigil-cp-{name}-")).tempdir().unwrap())
    }

    /// Writes `prev` then `cur` as a running engine would.
    fn two(name: &str, prev: Option<u64>, cur: Option<u64>) -> Scratch {
        let d = dir(name);
        write(&d, &cp(prev, 10)).unwrap();
        write(&d, &cp(cur, 20)).unwrap();
        d
    }

    #[test]
    fn the_committed_transaction_picks_the_checkpoint() {
        let d = two("cur", Some(1), Some(2));
        let mut warnings = Vec::new();
        let r = read_committed(&d, Some(2), &mut |w| warnings.push(w)).unwrap();
        assert_eq!((r.checkpoint.map(|c| c.offsets[0].2), r.last_txn), (Some(20), 2));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn an_uncommitted_newest_checkpoint_falls_back_and_is_kept_as_previous() {
        let d = two("prev", Some(1), Some(2));
        let mut warnings = Vec::new();
        let r = read_committed(&d, Some(1), &mut |w| warnings.push(w)).unwrap();
        assert_eq!((r.checkpoint.map(|c| c.offsets[0].2), r.last_txn), (Some(10), 2));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        // The committed one is current again: a second restart needs no fallback, and the
        // next checkpoint written keeps it as the previous one.
        let again = read_committed(&d, Some(1), &mut |w| panic!("{w}")).unwrap();
        assert_eq!(again.checkpoint.map(|c| c.txn), Some(Some(1)));
        assert_eq!(read(&d, &mut |_| {}).unwrap().map(|c| c.txn), Some(Some(1)));
    }

    #[test]
    fn a_committed_transaction_the_directory_lacks_is_refused() {
        let d = two("foreign", Some(4), Some(5));
        let err = read_committed(&d, Some(9), &mut |_| {}).unwrap_err().to_string();
        assert!(
            err.contains("checkpoint 9") && err.contains("transaction 5") && err.contains("transaction 4"),
            "{err}"
        );
    }

    #[test]
    fn nothing_committed_resumes_only_at_least_once_checkpoints() {
        // Two checkpoints whose transactions both failed to commit (each run crashed first).
        let d = dir("none");
        write(&d, &Checkpoint { after: None, ..cp(Some(1), 10) }).unwrap();
        write(&d, &Checkpoint { after: None, ..cp(Some(2), 20) }).unwrap();
        let mut warnings = Vec::new();
        let r = read_committed(&d, None, &mut |w| warnings.push(w)).unwrap();
        assert!(r.checkpoint.is_none() && r.last_txn == 2 && warnings.len() == 1, "{warnings:?}");
        // A switch from at-least-once: the last checkpoint of that mode is resumed.
        let d = two("switch", None, None);
        let r = read_committed(&d, None, &mut |_| {}).unwrap();
        assert_eq!((r.checkpoint.map(|c| c.offsets[0].2), r.last_txn), (Some(20), 0));
    }

    #[test]
    fn a_corrupt_newest_checkpoint_is_reported_and_the_committed_previous_used() {
        let d = two("corrupt", Some(1), Some(2));
        let bytes = std::fs::read(current(&d)).unwrap();
        std::fs::write(current(&d), &bytes[..bytes.len() - 3]).unwrap();
        let mut warnings = Vec::new();
        let r = read_committed(&d, Some(1), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(r.checkpoint.map(|c| c.txn), Some(Some(1)));
        assert!(warnings.iter().any(|w| w.contains("unusable")), "{warnings:?}");
        // With the previous one gone too, nothing committed cannot be resumed: refused.
        let d = two("corrupt2", Some(1), Some(2));
        std::fs::write(current(&d), b"garbage").unwrap();
        std::fs::write(previous(&d), b"garbage").unwrap();
        assert!(matches!(read_committed(&d, None, &mut |_| {}), Err(CheckpointError::Corrupt { .. })));
    }

    #[test]
    fn a_commit_topic_that_lost_records_is_refused() {
        // Checkpoint 2 was written after transaction 1 committed; the topic shows nothing.
        let d = two("lost", Some(1), Some(2));
        let err = read_committed(&d, None, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CheckpointError::CommitsMissing { after: 1, .. }), "{err}");
        assert!(read_committed(&d, Some(1), &mut |_| {}).is_ok());
    }

    #[test]
    fn a_newest_at_least_once_checkpoint_is_resumed_after_a_switch_of_mode() {
        // Exactly-once up to transaction 3, then a run in at-least-once mode.
        let d = two("back", Some(3), None);
        let mut warnings = Vec::new();
        let r = read_committed(&d, Some(3), &mut |w| warnings.push(w)).unwrap();
        assert_eq!((r.checkpoint.map(|c| (c.txn, c.offsets[0].2)), r.last_txn), (Some((None, 20)), 3));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_directory_is_locked_by_one_holder_at_a_time() {
        let d = dir("lock");
        let held = DirLock::acquire(&d).unwrap();
        let err = DirLock::acquire(&d).unwrap_err();
        assert!(matches!(err, CheckpointError::Locked { .. }), "{err}");
        drop(held);
        DirLock::acquire(&d).unwrap();
    }

    #[test]
    fn format_1_files_are_read() {
        #[derive(Serialize)]
        struct V1<'a>(u32, &'a str, Vec<(String, i32, i64)>, Watermarks, Vec<u8>);
        let body =
            postcard::to_allocvec(&V1(1, "old", vec![("t".into(), 0, 7)], Watermarks::new(&[0]), vec![9])).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend((body.len() as u64).to_le_bytes());
        bytes.extend(fnv(&body).to_le_bytes());
        bytes.extend(&body);
        let c = decode(&bytes).unwrap();
        assert_eq!((c.rules_version.as_str(), c.offsets[0].2, c.txn, c.pipeline), ("old", 7, None, vec![9]));
    }

    /// Format 2 (before checkpoints logged the archive's writers) is read with an empty log,
    /// and format 3 keeps the log it was written with.
    #[test]
    fn format_2_files_are_read_and_the_archive_log_round_trips() {
        #[derive(Serialize)]
        struct V2<'a>(u32, &'a str, Vec<(String, i32, i64)>, Watermarks, Vec<u8>, Option<u64>, Option<u64>);
        let old = V2(2, "old", vec![("t".into(), 0, 7)], Watermarks::new(&[0]), vec![9], Some(4), Some(3));
        let body = postcard::to_allocvec(&old).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend((body.len() as u64).to_le_bytes());
        bytes.extend(fnv(&body).to_le_bytes());
        bytes.extend(&body);
        let c = decode(&bytes).unwrap();
        assert_eq!((c.offsets[0].2, c.txn, c.after, c.archive), (7, Some(4), Some(3), ArchiveLog::default()));
        let mut log = ArchiveLog::default();
        log.record(0xabc, vigil_core::Position { offsets: 70, evaluated: 5 });
        let now = Checkpoint { archive: log.clone(), ..cp(None, 70) };
        assert_eq!(decode(&encode(&now).unwrap()).unwrap().archive, log);
    }

    /// Files are written compressed (a state of quiet rings shrinks severalfold), and a file
    /// written uncompressed by an earlier version is still read.
    #[test]
    fn files_are_compressed_and_uncompressed_ones_still_read() {
        let d = dir("lz4");
        let quiet = Checkpoint { pipeline: vec![0; 1 << 16], ..cp(None, 10) };
        let size = write(&d, &quiet).unwrap() as usize;
        let raw = encode(&quiet).unwrap();
        assert!(size * 10 < raw.len(), "{size} bytes written for {} encoded", raw.len());
        assert!(std::fs::read(current(&d)).unwrap().starts_with(MAGIC_LZ4));
        assert_eq!(read(&d, &mut |w| panic!("{w}")).unwrap().map(|c| c.pipeline.len()), Some(1 << 16));
        // The same checkpoint as an earlier version wrote it.
        std::fs::write(current(&d), &raw).unwrap();
        let c = read(&d, &mut |w| panic!("{w}")).unwrap().unwrap();
        assert_eq!((c.offsets[0].2, c.pipeline.len()), (10, 1 << 16));
        // A compressed file cut short is unusable, and the previous one is used.
        write(&d, &cp(None, 20)).unwrap();
        let bytes = std::fs::read(current(&d)).unwrap();
        std::fs::write(current(&d), &bytes[..bytes.len() - 2]).unwrap();
        let mut warnings = Vec::new();
        assert_eq!(read(&d, &mut |w| warnings.push(w)).unwrap().map(|c| c.offsets[0].2), Some(10));
        assert!(warnings.iter().any(|w| w.contains("unusable")), "{warnings:?}");
    }
}
