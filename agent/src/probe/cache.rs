//! Skipping files that did not change since the last look.
//!
//! The daemon looks at the terminal every check interval (10 s) so that a change is
//! reported at once, but version files, the distribution record and the certificate
//! change a few times a year. A [`FileCache`] keeps the last result made from a file
//! with the file's [`FileStamp`] (length, modification time and, on Unix, device,
//! inode and status-change time); while `stat` gives the same stamp, the result is
//! reused and the file is neither read nor parsed. A missing file has no stamp and is
//! tried (and its failure logged) every time, as before.
//!
//! A stamp cannot tell two writes within one tick of the file system's clock apart
//! (FAT and some network shares keep 2 s). So a result is trusted only if it was made
//! at least [`RACY_WINDOW`] after the file's modification time; a file read sooner
//! after it was written is read again at the next look (the "racy" case of git's
//! index).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// A result made from a file this soon after its modification time is not reused.
pub const RACY_WINDOW: Duration = Duration::from_secs(3);

/// What `stat` says about a file, enough to tell that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Device, inode and ctime: a file replaced by rename, or whose mtime was set
    /// back (`touch -d`), still changes these.
    #[cfg(unix)]
    identity: (u64, u64, i64, i64),
}

impl FileStamp {
    /// The stamp of `path` (symbolic links followed), or `None` if it cannot be had.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let identity = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
        };
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            identity,
        })
    }

    /// Old enough at `now` that a later write would give another stamp.
    fn settled(&self, now: SystemTime) -> bool {
        self.modified
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age >= RACY_WINDOW)
    }
}

/// The last result made from one file, reused while the file keeps its stamp.
#[derive(Debug)]
pub struct FileCache<T> {
    /// The stamp taken before the file was read, and what was made of it. Only
    /// settled stamps are kept.
    entry: Option<(FileStamp, T)>,
}

impl<T> Default for FileCache<T> {
    fn default() -> Self {
        Self { entry: None }
    }
}

impl<T: Clone> FileCache<T> {
    /// The result for `path`: the kept one if the file did not change, else a fresh
    /// `make()` (which reads the file itself).
    pub fn get(&mut self, path: &Path, make: impl FnOnce() -> T) -> T {
        // Taken before reading: a write in between gives a newer stamp next time.
        let Some(stamp) = FileStamp::of(path) else {
            self.entry = None;
            return make();
        };
        if let Some((kept, value)) = &self.entry
            && *kept == stamp
        {
            return value.clone();
        }
        let value = make();
        self.entry = stamp
            .settled(SystemTime::now())
            .then(|| (stamp, value.clone()));
        value
    }

    /// Whether a result is kept (tests).
    pub fn is_kept(&self) -> bool {
        self.entry.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::fs::{File, FileTimes};

    use super::*;

    fn dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fleet-agent-cache-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes `text` and sets the mtime `age` in the past.
    fn write_aged(path: &Path, text: &str, age: Duration) {
        std::fs::write(path, text).unwrap();
        let file = File::options().write(true).open(path).unwrap();
        file.set_times(FileTimes::new().set_modified(SystemTime::now() - age))
            .unwrap();
    }

    #[test]
    fn an_unchanged_file_is_read_once() {
        let dir = dir();
        let path = dir.join("Version.info");
        write_aged(&path, "Version=5.0.3\n", Duration::from_secs(60));
        let reads = Cell::new(0);
        let mut cache = FileCache::default();
        let read = || {
            reads.set(reads.get() + 1);
            std::fs::read_to_string(&path).unwrap()
        };
        assert_eq!(cache.get(&path, read), "Version=5.0.3\n");
        assert_eq!(cache.get(&path, read), "Version=5.0.3\n");
        assert_eq!(cache.get(&path, read), "Version=5.0.3\n");
        assert_eq!(reads.get(), 1);

        // Same length, mtime set back to the very same value: ctime still moves.
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "Version=5.1.0\n").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(before))
            .unwrap();
        let changed = cache.get(&path, read);
        if cfg!(unix) {
            assert_eq!(changed, "Version=5.1.0\n");
            assert_eq!(reads.get(), 2);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_written_just_now_is_read_again() {
        let dir = dir();
        let path = dir.join("distribution.txt");
        write_aged(&path, "a", Duration::ZERO);
        let reads = Cell::new(0);
        let mut cache = FileCache::default();
        let read = || reads.set(reads.get() + 1);
        cache.get(&path, read);
        cache.get(&path, read);
        assert_eq!(reads.get(), 2, "a racy stamp is not trusted");
        assert!(!cache.is_kept());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_tried_every_time_and_forgets_the_old_result() {
        let dir = dir();
        let path = dir.join("certificate.pem");
        write_aged(&path, "x", Duration::from_secs(60));
        let mut cache = FileCache::default();
        assert_eq!(cache.get(&path, || Some(1)), Some(1));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cache.get(&path, || None::<i32>), None);
        assert_eq!(cache.get(&path, || None::<i32>), None);
        assert!(!cache.is_kept());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
