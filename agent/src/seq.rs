//! The persisted sequence number: strictly increasing per terminal, never reused.
//!
//! The file `<state_dir>/seq` holds the *next* number to use, in decimal (no file:
//! 0). [`SeqStore::allocate`] hands out that number only after the file says the one
//! after it, written durably: a temporary file is written and fsynced, renamed over
//! `seq`, and the directory fsynced, so after a power cut the file holds either the
//! old or the new value, never a torn one. A number can therefore be lost (a gap,
//! which the contract allows) but never handed out twice — the service would keep a
//! report whose `seq` repeats an older one as history and never let it update the
//! terminal's state.
//!
//! A file that exists but does not hold a number is an error, not a reset to 0: a
//! reset would make every later report older than the last one the service stored.
//! One agent per state directory: two processes sharing it are not guarded against.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SeqError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} does not hold a sequence number ({content:?}); refusing to guess, fix or remove it by hand", path.display())]
    Corrupt { path: PathBuf, content: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the sequence number is exhausted")]
    Exhausted,
}

/// The `seq` file of one state directory.
#[derive(Debug, Clone)]
pub struct SeqStore {
    dir: PathBuf,
    path: PathBuf,
}

impl SeqStore {
    pub fn new(state_dir: &Path) -> Self {
        Self::named(state_dir, "seq")
    }

    /// The same durable counter under another file name in `state_dir` (the spool's
    /// count of dropped heartbeats uses it).
    pub fn named(state_dir: &Path, name: &str) -> Self {
        Self {
            dir: state_dir.to_owned(),
            path: state_dir.join(name),
        }
    }

    /// Adds `n` durably; returns the new value.
    pub fn add(&self, n: u64) -> Result<u64, SeqError> {
        let next = self.peek()?.checked_add(n).ok_or(SeqError::Exhausted)?;
        self.store(next).map_err(|source| SeqError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(next)
    }

    /// The file holding the next number.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number the next report will carry, without using it up.
    pub fn peek(&self) -> Result<u64, SeqError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map_err(|_| SeqError::Corrupt {
                path: self.path.clone(),
                content: text.chars().take(40).collect(),
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(SeqError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Uses up the next number: returns it once the file durably holds its successor.
    pub fn allocate(&self) -> Result<u64, SeqError> {
        let seq = self.peek()?;
        let next = seq.checked_add(1).ok_or(SeqError::Exhausted)?;
        self.store(next).map_err(|source| SeqError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(seq)
    }

    fn store(&self, next: u64) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = self.dir.join(tmp_name);
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            writeln!(file, "{next}")?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        crate::spool::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fleet-agent-seq-{name}-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn starts_at_zero_and_counts_up_across_instances() {
        let dir = temp_dir("count").join("nested");
        let store = SeqStore::new(&dir);
        assert_eq!(store.peek().unwrap(), 0);
        assert!(!dir.exists(), "peek must not create anything");
        assert_eq!(store.allocate().unwrap(), 0);
        assert_eq!(store.allocate().unwrap(), 1);
        // A new process sees what the old one persisted.
        let again = SeqStore::new(&dir);
        assert_eq!(again.peek().unwrap(), 2);
        assert_eq!(again.peek().unwrap(), 2, "peek never advances");
        assert_eq!(again.allocate().unwrap(), 2);
        assert_eq!(fs::read_to_string(dir.join("seq")).unwrap(), "3\n");
        assert!(!dir.join("seq.tmp").exists());
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn corrupt_file_is_refused_not_reset() {
        let dir = temp_dir("corrupt");
        fs::write(dir.join("seq"), "forty-two").unwrap();
        let store = SeqStore::new(&dir);
        assert!(matches!(store.peek(), Err(SeqError::Corrupt { .. })));
        assert!(matches!(store.allocate(), Err(SeqError::Corrupt { .. })));
        assert_eq!(fs::read_to_string(dir.join("seq")).unwrap(), "forty-two");
        fs::write(dir.join("seq"), "").unwrap();
        assert!(matches!(store.peek(), Err(SeqError::Corrupt { .. })));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_leftover_temp_file_does_not_matter() {
        let dir = temp_dir("leftover");
        fs::write(dir.join("seq"), "7\n").unwrap();
        fs::write(dir.join("seq.tmp"), "99").unwrap();
        let store = SeqStore::new(&dir);
        assert_eq!(store.allocate().unwrap(), 7);
        assert_eq!(store.peek().unwrap(), 8);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn exhaustion_is_an_error() {
        let dir = temp_dir("max");
        fs::write(dir.join("seq"), u64::MAX.to_string()).unwrap();
        assert!(matches!(
            SeqStore::new(&dir).allocate(),
            Err(SeqError::Exhausted)
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
