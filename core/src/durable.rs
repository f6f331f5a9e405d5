//! Files that must survive a crash whole and stay private: written to a temporary file,
//! fsynced, renamed over the old one and the directory fsynced, so a kill -9 or a power cut
//! leaves the old or the new content, never a mix; created 0600 in 0700 directories, since
//! they may hold positions and secrets of the migration.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `path` by `bytes` atomically and durably.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// An exclusive lock on `<dir>/LOCK` held as long as the returned file is open; the file
/// names the holder's pid. Fails with the holder's pid when another process has it.
pub fn lock_dir(dir: &Path) -> Result<File, String> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("LOCK");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(format!(
            "the data dir {} is in use by another dm process (pid {}); stop it first or give this one another data-dir",
            dir.display(),
            holder.trim()
        ));
    }
    f.set_len(0)
        .and_then(|_| f.write_all(std::process::id().to_string().as_bytes()))
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_privately_and_locks_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        let file = sub.join("x.json");
        write_atomically(&file, b"1").unwrap();
        write_atomically(&file, b"22").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"22");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&sub), 0o700);
        let held = lock_dir(&sub).unwrap();
        let err = lock_dir(&sub).unwrap_err();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        lock_dir(&sub).unwrap();
    }
}
