//! Replacing a file so that a crash leaves either its old or its new contents, never a mix.
//!
//! Every write goes through its own temporary file (`<name>.<pid>.<n>.tmp`), so two
//! concurrent writers of the same name never write into each other's bytes; the last
//! rename wins, and callers that care which one that is decide under their own lock
//! between [`Staged::write`] and [`Staged::commit`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const TEMP_SUFFIX: &str = ".tmp";

/// Distinguishes the temporary files of concurrent writes within this process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `dir/name` with `bytes`, fsyncing the file and then the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(dir, name, bytes, true, |f| f.sync_all())
}

/// Writes `bytes` to a temporary file of its own, syncs it with `sync`, renames it over
/// `dir/name` and, if `sync_dir`, syncs the directory with `sync` too so the rename itself
/// survives a power loss. `sync` lets a caller count or skip syncs (the Raft log does both).
pub fn write_atomic_with(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync_dir: bool,
    sync: impl Fn(&File) -> io::Result<()>,
) -> io::Result<()> {
    Staged::write(dir, name, bytes, &sync)?.commit(sync_dir, &sync)
}

/// New contents written and synced beside `dir/name`, not yet in its place. Dropped
/// without [`Staged::commit`], the temporary file is removed and `dir/name` is unchanged.
pub struct Staged {
    dir: PathBuf,
    name: String,
    tmp: Option<PathBuf>,
}

impl Staged {
    /// Writes `bytes` to a fresh temporary file in `dir` and syncs it with `sync`.
    pub fn write(dir: &Path, name: &str, bytes: &[u8], sync: impl Fn(&File) -> io::Result<()>) -> io::Result<Staged> {
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{name}.{}.{n}{TEMP_SUFFIX}", std::process::id()));
        let staged = Staged { dir: dir.to_path_buf(), name: name.to_owned(), tmp: Some(tmp.clone()) };
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(bytes)?;
        sync(&file)?;
        Ok(staged)
    }

    /// Renames the temporary file over `dir/name`; if `sync_dir`, syncs the directory.
    pub fn commit(mut self, sync_dir: bool, sync: impl Fn(&File) -> io::Result<()>) -> io::Result<()> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        if let Err(e) = fs::rename(&tmp, self.dir.join(&self.name)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if sync_dir {
            sync(&File::open(&self.dir)?)?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Removes temporary files of `name` that a crash left in `dir`. Call it only while no
/// write of `name` can be under way (at open).
pub fn remove_temporaries(dir: &Path, name: &str) -> io::Result<()> {
    let prefix = format!("{name}.");
    for dir_entry in fs::read_dir(dir)? {
        let path = dir_entry?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if file_name.starts_with(&prefix) && file_name.ends_with(TEMP_SUFFIX) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keepbit-atomic-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn temporaries(dir: &Path) -> Vec<String> {
        let names =
            fs::read_dir(dir).expect("list").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned());
        names.filter(|n| n.ends_with(TEMP_SUFFIX)).collect()
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = temp_dir("replace");
        write_atomic(&dir, "f", b"old").expect("write");
        let syncs = std::cell::Cell::new(0);
        write_atomic_with(&dir, "f", b"new", true, |_| {
            syncs.set(syncs.get() + 1);
            Ok(())
        })
        .expect("write");
        assert_eq!(fs::read(dir.join("f")).expect("read"), b"new");
        assert!(temporaries(&dir).is_empty());
        assert_eq!(syncs.get(), 2, "the file and the directory");
        fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Regression: every write used `<name>.tmp`, so two concurrent writes of one name
    /// wrote into the same temporary file and could rename a mix of both into place.
    /// Each staged write now has its own file; the one committed wins, the other leaves
    /// nothing behind.
    #[test]
    fn concurrent_writes_use_their_own_temporaries() {
        let dir = temp_dir("concurrent");
        let sync = |f: &File| f.sync_all();
        let first = Staged::write(&dir, "f", b"first", sync).expect("stage");
        let second = Staged::write(&dir, "f", b"second", sync).expect("stage");
        assert_eq!(temporaries(&dir).len(), 2);
        second.commit(true, sync).expect("commit");
        drop(first);
        assert_eq!(fs::read(dir.join("f")).expect("read"), b"second");
        assert!(temporaries(&dir).is_empty());

        fs::write(dir.join("f.123.4.tmp"), b"left by a crash").expect("write");
        fs::write(dir.join("other.tmp"), b"not ours").expect("write");
        remove_temporaries(&dir, "f").expect("remove");
        assert_eq!(temporaries(&dir), vec!["other.tmp".to_string()]);
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
