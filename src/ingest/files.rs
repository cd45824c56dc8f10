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

    /// Removes stored files that no document row names: a crash between
    /// storing a file and inserting its row leaves one. Runs at start, before
    /// any upload, so no file is on its way to a row. Other names are left alone.
    pub async fn remove_orphans(
        &self,
        catalog: &dyn crate::catalog::Catalog,
    ) -> Result<u64, crate::catalog::CatalogError> {
        let mut removed = 0;
        let entries = match std::fs::read_dir(&self.files) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %self.files.display(), error = %e, "could not list stored files");
                return Ok(0);
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<uuid::Uuid>().ok()).map(DocumentId) else {
                continue;
            };
            if !catalog.has_document(id).await? {
                tracing::info!(document = %id, "removing a stored file that no document names (left by a crash)");
                self.remove(id).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub async fn remove(&self, document: DocumentId) {
        if let Err(e) = tokio::fs::remove_file(self.path(document)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%document, error = %e, "could not remove stored file");
        }
    }
}
