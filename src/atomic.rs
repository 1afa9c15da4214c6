//! Atomic file writes: results, checkpoints, archives and downloads are never left
//! half-written.
//!
//! One mechanism serves every writer: [`AtomicFile`] streams into a temporary sibling of the
//! destination and [`commit`](AtomicFile::commit)s it with an fsync and a rename (then a
//! best-effort fsync of the directory); dropped without a commit — an error, an early return,
//! a panic — it deletes the temporary file, so the destination only ever holds the old content
//! or the complete new one. [`write_atomic`] is the one-call form for bytes in memory.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file in the same directory, synced and then
/// renamed over `path`, so a crash or a full disk leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.commit()
}

/// A file being written atomically: a [`Write`] into a temporary sibling of the destination,
/// renamed over the destination by [`commit`](Self::commit) and deleted if dropped before.
///
/// Writes are buffered; the temporary file is created (truncating any stale one of the same
/// name) by the constructor.
#[derive(Debug)]
pub struct AtomicFile {
    /// The destination.
    path: PathBuf,
    /// The temporary sibling written to.
    temp: PathBuf,
    /// The open temporary file; `None` once committed (then nothing is left to delete).
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` through the temporary sibling `<name>.tmp-<process id>`.
    pub fn create(path: &Path) -> Result<Self> {
        Self::create_at(path, temp_path(path))
    }

    /// Starts writing `path` through the temporary sibling `<name><suffix>` (e.g. `.part`
    /// for downloads, whose stale partial files are then overwritten by the next attempt).
    pub fn with_suffix(path: &Path, suffix: &str) -> Result<Self> {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(suffix);
        Self::create_at(path, path.with_file_name(name))
    }

    fn create_at(path: &Path, temp: PathBuf) -> Result<Self> {
        let file = File::create(&temp)
            .with_context(|| format!("cannot write {}: cannot create {}", path.display(), temp.display()))?;
        Ok(Self { path: path.to_path_buf(), temp, writer: Some(BufWriter::new(file)) })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes and fsyncs the temporary file, renames it over the destination and fsyncs the
    /// directory (best effort). On error the temporary file is deleted and the destination is
    /// untouched.
    pub fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("an uncommitted AtomicFile has a writer");
        let result = (|| -> io::Result<()> {
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&self.temp, &self.path)
        })();
        if let Err(err) = result {
            let _ = fs::remove_file(&self.temp);
            return Err(err).with_context(|| format!("cannot write {}", self.path.display()));
        }
        sync_parent_dir(&self.path);
        Ok(())
    }

    fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("an uncommitted AtomicFile has a writer")
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    /// Deletes the temporary file unless [`commit`](Self::commit) succeeded.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // Close the file before deleting it; unwritten buffered bytes are discarded.
            let (file, _) = writer.into_parts();
            drop(file);
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Deletes the temporary files [`AtomicFile::create`] (and so [`write_atomic`]) leaves behind
/// when a process is killed mid-write: the files of `dir` named `<name>.tmp-<process id>`.
/// Call it only while no other process writes into `dir` (e.g. with the directory locked).
/// A missing `dir` has nothing to clean.
pub fn remove_stale_temp_files(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let is_temp = name
            .to_str()
            .and_then(|n| n.rsplit_once(".tmp-"))
            .is_some_and(|(stem, pid)| !stem.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The temporary sibling used while writing `path`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Best-effort fsync of `path`'s directory so a rename into it is durable (Unix only;
/// directories cannot be opened this way elsewhere, and failure here loses nothing).
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let dir = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn error_names_the_file() {
        let err = write_atomic(Path::new("/nonexistent-dir/x.json"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-dir/x.json"));
    }

    #[test]
    fn streamed_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::with_suffix(&path, ".part").unwrap();
        assert_eq!(file.temp_path(), dir.path().join("big.bin.part"));
        assert_eq!(file.path(), path);
        for chunk in 0..100u8 {
            file.write_all(&[chunk; 1000]).unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), b"old", "untouched before the commit");
        file.commit().unwrap();
        let new = fs::read(&path).unwrap();
        assert_eq!((new.len(), new[0], new[99_999]), (100_000, 0, 99));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropping_without_commit_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        fs::write(&path, b"old").unwrap();
        // A stale temporary file of an earlier crash is overwritten, then removed.
        fs::write(dir.path().join("a.txt.part"), b"stale").unwrap();
        let mut file = AtomicFile::with_suffix(&path, ".part").unwrap();
        file.write_all(b"half of the new content").unwrap();
        file.flush().unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"new").unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.json", "a.json.tmp-123", "b.csv.tmp-9", "c.tmp-x", "d.part", ".tmp-1"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_temp_files(dir.path()).unwrap();
        let mut left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, [".tmp-1", "a.json", "c.tmp-x", "d.part"]);
        remove_stale_temp_files(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn failed_rename_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The destination is a non-empty directory: the rename fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), b"x").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"data").unwrap();
        let err = file.commit().unwrap_err();
        assert!(format!("{err:#}").contains("taken"), "{err:#}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
