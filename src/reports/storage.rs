//! Where report files live. A file is written under a temporary name and appears under its
//! key only when it is complete, so a reader never sees half a file. The directory store is the
//! default; an object store implements the same two traits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWriteExt, BufWriter};

use crate::error::{AppError, AppResult};

/// A file being written.
#[async_trait]
pub trait Upload: Send {
    async fn write(&mut self, bytes: &[u8]) -> AppResult<()>;
    /// Makes the file visible under its key; returns its size in bytes.
    async fn commit(self: Box<Self>) -> AppResult<u64>;
}

/// A stored file being read.
pub struct Download {
    pub size: u64,
    pub body: Box<dyn AsyncRead + Send + Unpin>,
}

#[async_trait]
pub trait Storage: Send + Sync {
    async fn create(&self, key: &str) -> AppResult<Box<dyn Upload>>;
    /// `None` when no file has that key.
    async fn open(&self, key: &str) -> AppResult<Option<Download>>;
    /// Removing a missing file is not an error.
    async fn delete(&self, key: &str) -> AppResult<()>;
    /// Removes what writers that died left behind, older than `age`.
    async fn sweep_partial(&self, age: std::time::Duration) -> AppResult<u64>;
    /// Removes every file whose key starts with `folder/` (a deleted tenant's).
    async fn delete_folder(&self, folder: &str) -> AppResult<()>;
}

pub type SharedStorage = Arc<dyn Storage>;

/// Files under one directory: `<dir>/<key>`, keys made by the server (`<tenant>/<run>.<ext>`).
pub struct Directory {
    root: PathBuf,
}

const PARTIAL: &str = ".partial";

impl Directory {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> AppResult<PathBuf> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.contains('\\')
            });
        if !safe {
            return Err(AppError::internal(anyhow::anyhow!(
                "unsafe storage key {key:?}"
            )));
        }
        Ok(self.root.join(key))
    }
}

struct DirectoryUpload {
    file: BufWriter<tokio::fs::File>,
    partial: PathBuf,
    dest: PathBuf,
    written: u64,
    committed: bool,
}

impl Drop for DirectoryUpload {
    fn drop(&mut self) {
        if !self.committed {
            // An abandoned upload leaves nothing behind (a crash leaves it to the sweep).
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn io(context: &str, path: &Path, e: std::io::Error) -> AppError {
    AppError::internal(anyhow::anyhow!("{context} {}: {e}", path.display()))
}

#[async_trait]
impl Upload for DirectoryUpload {
    async fn write(&mut self, bytes: &[u8]) -> AppResult<()> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| io("writing", &self.partial, e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> AppResult<u64> {
        self.file
            .flush()
            .await
            .map_err(|e| io("flushing", &self.partial, e))?;
        self.file
            .get_ref()
            .sync_all()
            .await
            .map_err(|e| io("syncing", &self.partial, e))?;
        tokio::fs::rename(&self.partial, &self.dest)
            .await
            .map_err(|e| io("renaming", &self.partial, e))?;
        self.committed = true;
        Ok(self.written)
    }
}

#[async_trait]
impl Storage for Directory {
    async fn create(&self, key: &str) -> AppResult<Box<dyn Upload>> {
        let dest = self.path(key)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("creating", parent, e))?;
        }
        let partial = dest.with_file_name(format!(
            "{}.{}{PARTIAL}",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            uuid::Uuid::new_v4().simple()
        ));
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| io("creating", &partial, e))?;
        Ok(Box::new(DirectoryUpload {
            file: BufWriter::with_capacity(64 * 1024, file),
            partial,
            dest,
            written: 0,
            committed: false,
        }))
    }

    async fn open(&self, key: &str) -> AppResult<Option<Download>> {
        let path = self.path(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                let size = file
                    .metadata()
                    .await
                    .map_err(|e| io("reading", &path, e))?
                    .len();
                Ok(Some(Download {
                    size,
                    body: Box::new(file),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("opening", &path, e)),
        }
    }

    async fn delete(&self, key: &str) -> AppResult<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting", &path, e)),
        }
    }

    async fn delete_folder(&self, folder: &str) -> AppResult<()> {
        let path = self.path(folder)?;
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting", &path, e)),
        }
    }

    async fn sweep_partial(&self, age: std::time::Duration) -> AppResult<u64> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sweep(&root, age))
            .await
            .map_err(AppError::internal)?
    }
}

fn sweep(dir: &Path, age: std::time::Duration) -> AppResult<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("listing", dir, e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            removed += sweep(&path, age)?;
        } else if path.to_string_lossy().ends_with(PARTIAL)
            && meta.modified().ok().and_then(|m| m.elapsed().ok()) >= Some(age)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_file_appears_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("fahwa-storage-{}", uuid::Uuid::new_v4()));
        let store = Directory::new(&dir);
        let mut up = store.create("t/run.csv").await.unwrap();
        up.write(b"a,b\n").await.unwrap();
        assert!(
            store.open("t/run.csv").await.unwrap().is_none(),
            "not before commit"
        );
        up.write(b"1,2\n").await.unwrap();
        assert_eq!(up.commit().await.unwrap(), 8);
        let mut got = String::new();
        let mut file = store.open("t/run.csv").await.unwrap().unwrap();
        assert_eq!(file.size, 8);
        file.body.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "a,b\n1,2\n");

        let mut dropped = store.create("t/other.csv").await.unwrap();
        dropped.write(b"half").await.unwrap();
        drop(dropped);
        let left: Vec<_> = std::fs::read_dir(dir.join("t")).unwrap().collect();
        assert_eq!(left.len(), 1, "an abandoned upload leaves nothing");

        store.delete("t/run.csv").await.unwrap();
        store.delete("t/run.csv").await.unwrap();
        assert!(store.open("t/run.csv").await.unwrap().is_none());
        assert!(store.create("../escape.csv").await.is_err());
        store.delete_folder("t").await.unwrap();
        assert!(!dir.join("t").exists(), "a tenant's folder goes whole");
        store.delete_folder("t").await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
