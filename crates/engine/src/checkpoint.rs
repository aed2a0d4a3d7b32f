//! Checkpoints: the pipeline's state, the watermarks and the next offset of every partition,
//! written together so that a restart resumes exactly where the state was taken (offsets live
//! in the checkpoint, Flink style). A checkpoint is written to a temporary file, synced and
//! renamed over the last one, which is kept as `checkpoint.prev`; a corrupt or truncated file is
//! detected by its checksum and the previous one is used instead, with a warning.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_window::Watermarks;

/// Format version of checkpoint files.
pub const CHECKPOINT_FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"VIGILCP\x01";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub rules_version: String,
    /// (topic, partition) in assignment order, with the next offset to read.
    pub offsets: Vec<(String, i32, i64)>,
    pub watermarks: Watermarks,
    /// `Pipeline::snapshot` bytes.
    pub pipeline: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is corrupt or truncated ({why}) and there is no good previous checkpoint")]
    Corrupt { path: PathBuf, why: String },
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
    let body = postcard::to_allocvec(cp)
        .map_err(|e| CheckpointError::Io { path: dir.into(), source: std::io::Error::other(e) })?;
    let tmp = dir.join("checkpoint.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(MAGIC).map_err(io(&tmp))?;
        f.write_all(&(body.len() as u64).to_le_bytes()).map_err(io(&tmp))?;
        f.write_all(&fnv(&body).to_le_bytes()).map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
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
    Ok(body.len() as u64 + 24)
}

fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
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
    let cp: Checkpoint = postcard::from_bytes(body).map_err(|e| e.to_string())?;
    if cp.format != CHECKPOINT_FORMAT {
        return Err(format!("format {} is not {CHECKPOINT_FORMAT}", cp.format));
    }
    Ok(cp)
}

/// Reads the newest good checkpoint of `dir`: `None` when there is none. A bad newest file is
/// reported through `warn` and the previous one used.
pub fn read(dir: &Path, warn: &mut dyn FnMut(String)) -> Result<Option<Checkpoint>, CheckpointError> {
    let cur = current(dir);
    let prev = previous(dir);
    let load = |p: &Path| -> Result<Option<Result<Checkpoint, String>>, CheckpointError> {
        match std::fs::read(p) {
            Ok(b) => Ok(Some(decode(&b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Io { path: p.into(), source }),
        }
    };
    match load(&cur)? {
        // Only a checkpoint directory written by an older vigil can lack the current file
        // while holding a previous one.
        None => match load(&prev)? {
            Some(Ok(cp)) => {
                warn(format!("checkpoint {} is missing; resuming from the previous one", cur.display()));
                Ok(Some(cp))
            }
            _ => Ok(None),
        },
        Some(Ok(cp)) => Ok(Some(cp)),
        Some(Err(why)) => {
            warn(format!("checkpoint {} is unusable ({why}); trying the previous one", cur.display()));
            match load(&prev)? {
                Some(Ok(cp)) => Ok(Some(cp)),
                _ => Err(CheckpointError::Corrupt { path: cur, why }),
            }
        }
    }
}
