//! Receiving an uploaded file: streamed to a temporary file under the data dir,
//! hashed and sniffed on the way, never held whole in memory, cut off as soon as
//! it passes the size limit.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::detect::{self, Detected, HEAD_BYTES, Utf8Validator};

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("file is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("could not store the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// A file being received.
pub struct FileStager {
    path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    head: Vec<u8>,
    utf8: Utf8Validator,
    bytes: u64,
    limit: u64,
    /// The head was judged once it was complete.
    judged_early: bool,
}

/// A file fully received: on disk, hashed and judged, not yet a document.
#[derive(Debug)]
pub struct StagedFile {
    pub path: PathBuf,
    pub filename: String,
    pub bytes: u64,
    pub sha256: String,
    pub detected: Detected,
}

impl FileStager {
    pub async fn create(dir: &Path, limit: u64) -> Result<Self, StagingError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        // Readable too: a zip is judged by its directory, read back once it is whole.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Self {
            path,
            file,
            hasher: Sha256::new(),
            head: Vec::new(),
            utf8: Utf8Validator::default(),
            bytes: 0,
            limit,
            judged_early: false,
        })
    }

    /// What the file is, once its first [`HEAD_BYTES`] are in, when that is
    /// unsupported whatever follows (a binary format, bytes that are not UTF-8
    /// text): the upload is refused before the rest is read. Asked after each
    /// write; answers at most once.
    pub fn refused_early(&mut self) -> Option<&'static str> {
        if self.judged_early || self.head.len() < HEAD_BYTES {
            return None;
        }
        self.judged_early = true;
        match detect::detect(&self.head, self.utf8.is_valid_so_far()) {
            Detected::Unsupported(name) => Some(name),
            Detected::Supported(_) | Detected::Container(_) => None,
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StagingError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(StagingError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.utf8.feed(chunk);
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Syncs the file to disk: once the upload is acknowledged, the bytes must
    /// survive. A zip or OLE2 file is judged by what its directory lists.
    pub async fn finish(mut self, filename: String) -> Result<StagedFile, StagingError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let mut detected = detect::detect(&self.head, self.utf8.is_valid());
        if let Detected::Container(container) = detected {
            let file = self.file.into_std().await;
            detected =
                tokio::task::spawn_blocking(move || detect::open_container(std::io::BufReader::new(file), container))
                    .await
                    .unwrap_or(Detected::Unsupported("a zip or OLE2 container that could not be read"));
        }
        Ok(StagedFile {
            path: self.path,
            filename,
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
            detected,
        })
    }

    /// Throws the partial file away.
    pub async fn abort(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

impl StagedFile {
    pub async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// A file name fit to store and show: no directories, no control characters,
/// and none of the invisible format characters that make a name display as
/// another (U+202E turns `txt.exe` around; zero-width ones hide in look-alikes).
pub fn clean_filename(raw: Option<&str>) -> String {
    let base = raw.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible_format(c))
        .take(255)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload".to_string()
    } else {
        cleaned.to_string()
    }
}

/// Bidirectional overrides, isolates and marks, zero-width characters and the
/// byte order mark (Unicode's "Cf" characters that change how text displays).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_their_directories() {
        assert_eq!(clean_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_filename(Some("C:\\docs\\a.pdf")), "a.pdf");
        assert_eq!(clean_filename(Some("")), "upload");
        assert_eq!(clean_filename(None), "upload");
        assert_eq!(clean_filename(Some("a\u{0}b.txt")), "ab.txt");
        assert_eq!(clean_filename(Some("invoice\u{202e}fdp.exe")), "invoicefdp.exe");
        assert_eq!(
            clean_filename(Some("pay\u{200b}roll\u{2066}.pdf\u{feff}")),
            "payroll.pdf"
        );
        assert_eq!(clean_filename(Some("\u{202e}")), "upload");
    }

    #[tokio::test]
    async fn an_unsupported_file_is_known_by_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut gif = FileStager::create(dir.path(), u64::MAX).await.unwrap();
        gif.write(b"GIF89a").await.unwrap();
        assert_eq!(gif.refused_early(), None, "judged once the head is complete");
        gif.write(&vec![0u8; HEAD_BYTES]).await.unwrap();
        assert_eq!(gif.refused_early(), Some("image/gif"));
        assert_eq!(gif.refused_early(), None, "answers once");
        gif.abort().await;
        // A zip may hold a document: judged by its directory, once it is whole.
        let mut zip = FileStager::create(dir.path(), u64::MAX).await.unwrap();
        zip.write(b"PK\x03\x04").await.unwrap();
        zip.write(&vec![0u8; HEAD_BYTES]).await.unwrap();
        assert_eq!(zip.refused_early(), None);
        let staged = zip.finish("a.zip".into()).await.unwrap();
        assert!(matches!(staged.detected, Detected::Unsupported(name) if name.contains("zip")));
        staged.discard().await;
        let mut text = FileStager::create(dir.path(), u64::MAX).await.unwrap();
        text.write("Grüße aus dem Büro. ".repeat(5_000).as_bytes())
            .await
            .unwrap();
        assert_eq!(text.refused_early(), None);
        text.abort().await;
    }

    #[tokio::test]
    async fn a_file_over_the_limit_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut stager = FileStager::create(dir.path(), 10).await.unwrap();
        stager.write(b"12345").await.unwrap();
        assert!(matches!(
            stager.write(b"678901").await,
            Err(StagingError::TooLarge { limit: 10 })
        ));
        stager.abort().await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn the_hash_is_of_all_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut stager = FileStager::create(dir.path(), 100).await.unwrap();
        stager.write(b"hello ").await.unwrap();
        stager.write(b"world").await.unwrap();
        let staged = stager.finish("x.txt".into()).await.unwrap();
        assert_eq!(
            staged.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(staged.bytes, 11);
    }
}
