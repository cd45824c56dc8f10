//! Finding the local model's files: `EMBED_MODEL_DIR`, else the Hugging Face hub
//! cache, else our own download cache, else a download from the hub.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EmbedError;
use crate::config::{EmbedderSettings, HubSettings};

pub const REQUIRED_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    Directory,
    HubCache,
    Downloaded,
}

#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub source: ModelSource,
}

impl ModelFiles {
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

fn missing_files(dir: &Path) -> Vec<&'static str> {
    REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

pub async fn locate(settings: &EmbedderSettings) -> Result<ModelFiles, EmbedError> {
    if let Some(dir) = &settings.model_dir {
        let missing = missing_files(dir);
        if !missing.is_empty() {
            return Err(EmbedError::ModelUnavailable(format!(
                "EMBED_MODEL_DIR={} lacks {}",
                dir.display(),
                missing.join(", ")
            )));
        }
        return Ok(ModelFiles {
            dir: dir.clone(),
            source: ModelSource::Directory,
        });
    }
    if let Some(dir) = hub_cache_snapshot(&settings.hub, &settings.model) {
        return Ok(ModelFiles {
            dir,
            source: ModelSource::HubCache,
        });
    }
    let ours = download_dir(&settings.download_dir, &settings.model);
    if missing_files(&ours).is_empty() {
        return Ok(ModelFiles {
            dir: ours,
            source: ModelSource::Downloaded,
        });
    }
    if settings.hub.offline {
        return Err(EmbedError::ModelUnavailable(format!(
            "{} is not in the hub cache and HF_HUB_OFFLINE=1",
            settings.model
        )));
    }
    download(&settings.hub.endpoint, &settings.model, &ours).await?;
    Ok(ModelFiles {
        dir: ours,
        source: ModelSource::Downloaded,
    })
}

/// The hub cache, laid out as the hub libraries write it:
/// `models--org--name/refs/main` names a snapshot.
fn hub_cache_snapshot(hub: &HubSettings, model: &str) -> Option<PathBuf> {
    let root = hub.cache_dir.as_ref()?;
    let repo = root.join(format!("models--{}", model.replace('/', "--")));
    let revision = std::fs::read_to_string(repo.join("refs/main")).ok()?;
    let snapshot = repo.join("snapshots").join(revision.trim());
    missing_files(&snapshot).is_empty().then_some(snapshot)
}

fn download_dir(models: &Path, model: &str) -> PathBuf {
    models.join(model.replace('/', "--"))
}

/// Fetches the files from huggingface.co into `dest`, each through a temporary
/// file so that a broken download never looks complete.
async fn download(endpoint: &str, model: &str, dest: &Path) -> Result<(), EmbedError> {
    crate::openai::install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| EmbedError::ModelUnavailable(format!("http client: {e}")))?;
    tokio::fs::create_dir_all(dest)
        .await
        .map_err(|e| EmbedError::ModelUnavailable(format!("{}: {e}", dest.display())))?;
    for file in REQUIRED_FILES {
        let url = format!("{endpoint}/{model}/resolve/main/{file}");
        tracing::info!(%url, "downloading embedding model file");
        let unavailable =
            |e: &dyn std::fmt::Display| EmbedError::ModelUnavailable(format!("download of {url} failed: {e}"));
        let response = client.get(&url).send().await.map_err(|e| unavailable(&e))?;
        let response = response.error_for_status().map_err(|e| unavailable(&e))?;
        let bytes = response.bytes().await.map_err(|e| unavailable(&e))?;
        let partial = dest.join(format!("{file}.partial"));
        tokio::fs::write(&partial, &bytes).await.map_err(|e| unavailable(&e))?;
        tokio::fs::rename(&partial, dest.join(file))
            .await
            .map_err(|e| unavailable(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_cache_layout_is_followed() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("models--org--model");
        let snapshot = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        for f in REQUIRED_FILES {
            std::fs::write(snapshot.join(f), b"x").unwrap();
        }
        let hub = HubSettings {
            endpoint: "http://unused".into(),
            cache_dir: Some(root.path().to_path_buf()),
            offline: true,
        };
        assert_eq!(hub_cache_snapshot(&hub, "org/model"), Some(snapshot.clone()));
        std::fs::remove_file(snapshot.join("tokenizer.json")).unwrap();
        assert_eq!(hub_cache_snapshot(&hub, "org/model"), None);
    }
}
