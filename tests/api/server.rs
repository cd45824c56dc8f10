//! `docqa serve`, the real binary, as a process of its own on a free port: what a
//! crash or an abort would take down is that process, not the test.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::helpers::{model_dir, onnx_vars};

pub struct Server {
    child: Child,
    pub url: String,
    /// The server's output (its log), to show when something went wrong.
    log: tempfile::NamedTempFile,
}

impl Server {
    /// Starts over `data` with the test embedder; `extra` settings on top.
    pub fn start(data: &Path, extra: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        // One file description for both streams, so that they append, not overwrite.
        let output = log.reopen().expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_docqa"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DOCQA_ADDR", format!("127.0.0.1:{port}"))
            .env("DOCQA_DATA_DIR", data)
            .env("EMBEDDER", "local")
            .env("EMBED_MODEL_DIR", model_dir())
            .env("DOCQA_EXE", env!("CARGO_BIN_EXE_docqa"))
            .env("RUST_LOG", "warn")
            .stdout(output.try_clone().expect("log file"))
            .stderr(output);
        for (k, v) in onnx_vars() {
            command.env(k, v);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("docqa starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn ready(&self, client: &reqwest::Client) {
        for _ in 0..600 {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("docqa did not become ready; its log:\n{}", self.log_tail());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// GET `path`: its JSON body.
    pub async fn get_json(&self, client: &reqwest::Client, path: &str) -> serde_json::Value {
        let response = client.get(self.url(path)).send().await.expect("request");
        response.json().await.expect("a JSON body")
    }

    /// Uploads one file to `default` (waiting for it with `wait`): the answer.
    pub async fn upload(&self, client: &reqwest::Client, name: &str, bytes: Vec<u8>, wait: bool) -> serde_json::Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        let path = if wait {
            "/v1/documents?wait=true"
        } else {
            "/v1/documents"
        };
        let response = client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("request");
        response.json().await.expect("a JSON body")
    }

    /// All the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Lines of the log that say something panicked.
    pub fn panics(&self) -> Vec<String> {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("panic"))
            .map(str::to_string)
            .collect()
    }

    pub fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait for the clean shutdown (the index is flushed).
    pub fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// Peak resident memory so far, in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
