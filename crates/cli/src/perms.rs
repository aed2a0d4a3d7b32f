//! Start-up checks of the directories `vigil run` trusts: the rules (which decide what is
//! alerted) and the checkpoint and archive directories (which it resumes from and writes to).
//! Anyone who can write there can change what vigil does, so a world-writable one is refused
//! with a message naming it; directories vigil creates itself are made private to its user.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

const WORLD_WRITABLE: u32 = 0o002;
/// The sticky bit: in a world-writable directory, only owners may remove or rename entries
/// (how /tmp and Kubernetes' volume roots are set up), so such a directory is accepted.
const STICKY: u32 = 0o1000;

fn unsafe_mode(path: &Path) -> Result<Option<u32>> {
    // Symbolic links themselves carry no meaningful mode; what they point to is checked.
    let meta = fs::metadata(path).with_context(|| format!("check permissions of {}", path.display()))?;
    let mode = meta.permissions().mode();
    let bad = mode & WORLD_WRITABLE != 0 && !(meta.is_dir() && mode & STICKY != 0);
    Ok(bad.then_some(mode & 0o7777))
}

/// Refuses a rule set any user could have changed: the directory, its subdirectories and every
/// file in them.
pub fn check_rules(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Some(mode) = unsafe_mode(&p)? {
            bail!(
                "{} is writable by every user (mode {mode:o}): anyone could change the rules; \
                 remove the permission (chmod o-w) and start again",
                p.display()
            );
        }
        if fs::metadata(&p)?.is_dir() {
            for e in fs::read_dir(&p).with_context(|| format!("read {}", p.display()))? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

/// Makes sure a state directory exists, creating it (mode 0700) if needed, and refuses one
/// that every user can write to.
pub fn check_state_dir(dir: &Path, what: &str) -> Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("create the {what} directory {}", dir.display()))?;
        return Ok(());
    }
    if let Some(mode) = unsafe_mode(dir)? {
        bail!(
            "the {what} directory {} is writable by every user (mode {mode:o}): anyone could replace \
             what vigil resumes from; remove the permission (chmod o-w) and start again",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-perms-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("indicators")).unwrap();
        fs::write(d.join("indicators/police.toml"), "x").unwrap();
        d
    }

    #[test]
    fn world_writable_rules_are_refused_and_private_ones_accepted() {
        let d = scratch("rules");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        check_rules(&d).unwrap();
        let f = d.join("indicators/police.toml");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        let err = check_rules(&d).unwrap_err().to_string();
        assert!(err.contains("police.toml") && err.contains("666"), "{err}");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        // A world-writable directory with the sticky bit (Kubernetes' volume roots) is fine.
        fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
        check_rules(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_rules(&d).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn state_directories_are_created_private_and_refused_when_world_writable() {
        let d = scratch("state");
        let cp = d.join("checkpoints");
        check_state_dir(&cp, "checkpoint").unwrap();
        assert_eq!(fs::metadata(&cp).unwrap().permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&cp, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_state_dir(&cp, "checkpoint").unwrap_err().to_string();
        assert!(err.contains("checkpoint directory") && err.contains("777"), "{err}");
        let _ = fs::remove_dir_all(&d);
    }
}
