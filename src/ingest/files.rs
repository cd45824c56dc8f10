//! Where uploaded files live: `<data dir>/files/<document id>`, received first
//! into `<data dir>/uploads/` on the same file system so that storing is a rename.

use std::path::{Path, PathBuf};

use crate::domain::DocumentId;

#[derive(Debug, Clone)]
pub struct FileStore {
    files: PathBuf,
    staging: PathBuf,
}

impl FileStore {
    /// Creates the folders and clears uploads a crash left half-received.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let store = Self {
            files: data_dir.join("files"),
            staging: data_dir.join("uploads"),
        };
        std::fs::create_dir_all(&store.files)?;
        std::fs::create_dir_all(&store.staging)?;
        for entry in std::fs::read_dir(&store.staging)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(store)
    }

    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    pub fn path(&self, document: DocumentId) -> PathBuf {
        self.files.join(document.to_string())
    }

    pub async fn store(&self, staged: &Path, document: DocumentId) -> std::io::Result<()> {
        tokio::fs::rename(staged, self.path(document)).await
    }

    pub async fn remove(&self, document: DocumentId) {
        if let Err(e) = tokio::fs::remove_file(self.path(document)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%document, error = %e, "could not remove stored file");
        }
    }
}
