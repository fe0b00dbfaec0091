//! Replacing a file so that a crash leaves either its old or its new contents, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `dir/name` with `bytes`, fsyncing the file and then the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(dir, name, bytes, true, |f| f.sync_all())
}

/// Writes `bytes` to `dir/name.tmp`, syncs it with `sync`, renames it over `dir/name` and,
/// if `sync_dir`, syncs the directory with `sync` too so the rename itself survives a
/// power loss. `sync` lets a caller count or skip syncs (the Raft log does both).
pub fn write_atomic_with(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync_dir: bool,
    sync: impl Fn(&File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    file.write_all(bytes)?;
    sync(&file)?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    if sync_dir {
        sync(&File::open(dir)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("keepbit-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        write_atomic(&dir, "f", b"old").unwrap();
        let syncs = std::cell::Cell::new(0);
        write_atomic_with(&dir, "f", b"new", true, |_| {
            syncs.set(syncs.get() + 1);
            Ok(())
        })
        .unwrap();
        assert_eq!(fs::read(dir.join("f")).unwrap(), b"new");
        assert!(!dir.join("f.tmp").exists());
        assert_eq!(syncs.get(), 2, "the file and the directory");
        fs::remove_dir_all(&dir).unwrap();
    }
}
