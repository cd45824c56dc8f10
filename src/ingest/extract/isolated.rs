//! Extraction in a child process of the same binary (`docqa extract-child`),
//! with an address-space and a CPU-time limit: a parser that panics, loops,
//! overflows its stack or eats memory costs that child, never the server or
//! another document. `catch_unwind` alone is not enough: a stack overflow or an
//! allocation failure aborts the whole process.
//!
//! The child reads the stored file, extracts it with the same code as the
//! in-thread path ([`super::extract_within`]) and writes the result on stdout
//! as JSON lines, a page each; the parent reads them one at a time within
//! `MAX_DOCUMENT_CHARS`, and maps a kill, a signal or a limit to a document reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::PageProgress;
use super::ocr::Ocr;
use super::{ExtractError, ExtractLimits, ExtractedText};
use crate::config::{ExtractIsolation, ExtractSettings};
use crate::domain::{ContentType, PageGeometry};

/// The hidden subcommand the child runs.
pub const CHILD_COMMAND: &str = "extract-child";
const PROBE_ANSWER: &str = "docqa extract-child ready";

/// How extraction is isolated here, decided once at start.
#[derive(Debug, Clone)]
pub struct Extractor {
    isolation: Isolation,
    timeout: Duration,
    memory_mb: u64,
    limits: ExtractLimits,
    /// Images (and, later, scanned pages) are read by OCR, in a process of its own.
    ocr: Arc<Ocr>,
}

#[derive(Debug, Clone)]
enum Isolation {
    Process(PathBuf),
    /// On a low-priority thread of the server, with `catch_unwind`.
    Thread,
}

#[derive(Debug, thiserror::Error)]
#[error("EXTRACT_ISOLATION=process: {0}")]
pub struct IsolationUnavailable(String);

impl Extractor {
    /// Checks that the executable answers as a docqa extraction child. With
    /// `auto`, a missing one falls back to threads (said in the log); with
    /// `process`, it stops the start.
    pub fn from_settings(settings: &ExtractSettings, ocr: Arc<Ocr>) -> Result<Self, IsolationUnavailable> {
        let isolation = match settings.isolation {
            ExtractIsolation::Thread => Isolation::Thread,
            ExtractIsolation::Process | ExtractIsolation::Auto => {
                let checked = match settings.exe.clone().or_else(|| std::env::current_exe().ok()) {
                    Some(exe) => probe(&exe).map(|()| exe),
                    None => Err("the server's own executable is unknown".to_string()),
                };
                match checked {
                    Ok(exe) => Isolation::Process(exe),
                    Err(why) if settings.isolation == ExtractIsolation::Auto => {
                        tracing::warn!(reason = %why,
                            "parsers run in threads of the server, not in child processes: set DOCQA_EXE to the docqa binary");
                        Isolation::Thread
                    }
                    Err(why) => return Err(IsolationUnavailable(why)),
                }
            }
        };
        if let Isolation::Process(exe) = &isolation {
            tracing::info!(exe = %exe.display(), memory_mb = settings.memory_mb, "parsers run in child processes");
        }
        Ok(Self {
            isolation,
            timeout: settings.timeout,
            memory_mb: settings.memory_mb,
            limits: ExtractLimits {
                max_pages: settings.max_pages,
                max_chars: settings.max_chars,
            },
            ocr,
        })
    }

    pub fn is_isolated(&self) -> bool {
        matches!(self.isolation, Isolation::Process(_))
    }

    /// Reads and extracts a stored file, giving up after the timeout. OCR of a
    /// PDF's scanned pages reports its progress (pages done, pages to read) on
    /// `progress`.
    pub async fn extract_file(
        &self,
        path: &Path,
        content_type: ContentType,
        progress: &PageProgress,
    ) -> Result<ExtractedText, ExtractError> {
        match &self.isolation {
            // OCR is a process of its own already, under the same limits.
            _ if content_type.is_image() => {
                let memory = self.memory_mb.saturating_mul(1024 * 1024);
                let text = self.ocr.recognize(path, self.timeout, memory, self.limits).await?;
                super::checked(text, self.limits)
            }
            // Plain text and Markdown are only decoded as UTF-8, no parser runs:
            // a child process per file would cost more than the work (SciFact's
            // 5,183 small abstracts).
            _ if !content_type.needs_parser() => {
                super::extract_in_thread(path, content_type, self.timeout, self.limits).await
            }
            Isolation::Thread => {
                let text = super::extract_in_thread(path, content_type, self.timeout, self.limits).await?;
                self.with_ocr_pages(path, text, progress).await
            }
            Isolation::Process(exe) => {
                let text = self.extract_in_child(exe, path, content_type).await?;
                self.with_ocr_pages(path, text, progress).await
            }
        }
    }

    /// A PDF's pages without a text layer, read by OCR; then the checks again.
    async fn with_ocr_pages(
        &self,
        path: &Path,
        mut text: ExtractedText,
        progress: &PageProgress,
    ) -> Result<ExtractedText, ExtractError> {
        if text.needs_ocr.is_empty() {
            return Ok(text);
        }
        let memory = self.memory_mb.saturating_mul(1024 * 1024);
        self.ocr
            .pdf_pages(path, &mut text, self.timeout, memory, self.limits, progress)
            .await?;
        super::checked(text, self.limits)
    }

    async fn extract_in_child(
        &self,
        exe: &Path,
        path: &Path,
        content_type: ContentType,
    ) -> Result<ExtractedText, ExtractError> {
        let mut command = tokio::process::Command::new(exe);
        command
            .arg(CHILD_COMMAND)
            .arg(content_type.mime())
            .arg(path)
            .arg(self.limits.max_pages.to_string())
            .arg(self.limits.max_chars.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let limits = Limits {
            memory_bytes: self.memory_mb.saturating_mul(1024 * 1024),
            cpu_seconds: self.timeout.as_secs() + 1,
        };
        // SAFETY: the closure runs between fork and exec and only calls
        // async-signal-safe functions (setrlimit, setpriority).
        unsafe {
            command.pre_exec(move || {
                limits.apply();
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| ExtractError::Io(format!("starting the extraction process: {e}")))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ExtractError::Io("the extraction process has no output".into()));
        };
        let stderr = tokio::spawn(tail_of(stderr));
        let finished = tokio::time::timeout(self.timeout, async {
            let pages = read_pages(stdout, self.limits).await;
            // Over a limit: no need to hear the rest.
            if matches!(pages, Err(ExtractError::TooMuchText { .. })) {
                let _ = child.start_kill();
            }
            (pages, child.wait().await)
        })
        .await;
        let (pages, status) = match finished {
            // Dropping the child kills it (kill_on_drop).
            Err(_) => return Err(ExtractError::Timeout(self.timeout.as_secs())),
            Ok((_, Err(e))) => return Err(ExtractError::Io(format!("waiting for the extraction process: {e}"))),
            Ok((pages, Ok(status))) => (pages, status),
        };
        match pages {
            Err(too_much @ ExtractError::TooMuchText { .. }) => Err(too_much),
            Ok(Some(result)) if status.success() => result,
            _ if status.success() => Err(ExtractError::Io("the extraction process ended without a result".into())),
            _ => {
                let stderr = stderr.await.unwrap_or_default();
                Err(self.failure(status, &String::from_utf8_lossy(&stderr)))
            }
        }
    }

    /// Why a child that did not exit cleanly failed.
    fn failure(&self, status: std::process::ExitStatus, stderr: &str) -> ExtractError {
        use std::os::unix::process::ExitStatusExt;
        if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
            return ExtractError::OutOfMemory(self.memory_mb);
        }
        match status.signal() {
            Some(libc::SIGXCPU) | Some(libc::SIGKILL) => ExtractError::Timeout(self.timeout.as_secs()),
            Some(signal) => {
                let overflow = stderr.contains("has overflowed its stack");
                ExtractError::Panicked(if overflow {
                    "stack overflow".to_string()
                } else {
                    format!("killed by signal {signal}")
                })
            }
            None => ExtractError::Panicked(last_line(stderr)),
        }
    }
}

/// What the child writes on stdout, one JSON document a line: its pages as
/// they come, then how it ended. The parent holds pages, never the raw output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildLine {
    Page(String),
    /// Where the words of the page just sent stand (PDF text layers).
    Geometry(PageGeometry),
    Done {
        unreadable_pages: Vec<u32>,
        #[serde(default)]
        notes: Vec<String>,
        #[serde(default)]
        needs_ocr: Vec<u32>,
    },
    Failed(ExtractError),
}

/// The child's pages, line by line, within the limits: a line longer than a
/// page could be, or more text than `max_chars`, stops the reading. `None`
/// when the output ended without a last line (the child died).
async fn read_pages(
    stdout: tokio::process::ChildStdout,
    limits: ExtractLimits,
) -> Result<Option<Result<ExtractedText, ExtractError>>, ExtractError> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let too_much = ExtractError::TooMuchText {
        limit: limits.max_chars,
    };
    // JSON takes at most 6 bytes for a character (`\u00e9` style escapes).
    let longest_line = (limits.max_chars as u64).saturating_mul(6).saturating_add(4096);
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut pages = Vec::new();
    let mut geometry: Vec<Option<PageGeometry>> = Vec::new();
    let mut chars = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(longest_line)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| ExtractError::Io(format!("reading the extraction process: {e}")))?;
        if read == 0 {
            return Ok(None);
        }
        if !line.ends_with(b"\n") && read as u64 == longest_line {
            return Err(too_much);
        }
        let parsed: ChildLine = serde_json::from_slice(&line)
            .map_err(|e| ExtractError::Io(format!("the extraction process answered nonsense: {e}")))?;
        match parsed {
            ChildLine::Page(page) => {
                chars += page.chars().count();
                if chars > limits.max_chars {
                    return Err(too_much);
                }
                pages.push(page);
                geometry.push(None);
            }
            ChildLine::Geometry(page_geometry) => {
                if let Some(last) = geometry.last_mut() {
                    *last = Some(page_geometry);
                }
            }
            ChildLine::Done {
                unreadable_pages,
                notes,
                needs_ocr,
            } => {
                // Without a single box, nothing to carry.
                if geometry.iter().all(Option::is_none) {
                    geometry.clear();
                }
                return Ok(Some(Ok(ExtractedText {
                    pages: std::mem::take(&mut pages),
                    unreadable_pages,
                    notes,
                    needs_ocr,
                    geometry: std::mem::take(&mut geometry),
                    ocr_pages: Vec::new(),
                })));
            }
            ChildLine::Failed(error) => return Ok(Some(Err(error))),
        }
    }
}

/// The last 64 KiB a child wrote on stderr (a panic message, an allocator's
/// complaint), read as it comes so that the child never blocks on a full pipe.
async fn tail_of(stderr: tokio::process::ChildStderr) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    const KEEP: usize = 64 * 1024;
    let mut stderr = stderr;
    let mut tail = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buffer[..n]);
        if tail.len() > 2 * KEEP {
            tail.drain(..tail.len() - KEEP);
        }
    }
    tail
}

pub(super) fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(300).collect())
        .unwrap_or_else(|| "exited without a result".to_string())
}

/// Resource limits of a child, applied between fork and exec.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
}

impl Limits {
    pub fn apply(self) {
        let set = |resource, value: u64| {
            let limit = libc::rlimit {
                rlim_cur: value as libc::rlim_t,
                rlim_max: value as libc::rlim_t,
            };
            // SAFETY: setrlimit with a valid pointer to a local struct.
            unsafe { libc::setrlimit(resource, &limit) };
        };
        set(libc::RLIMIT_AS, self.memory_bytes);
        set(libc::RLIMIT_CPU, self.cpu_seconds);
        set(libc::RLIMIT_CORE, 0);
        // SAFETY: lowers this (child) process's own priority.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    }
}

/// Asks the executable to answer as an extraction child.
fn probe(exe: &Path) -> Result<(), String> {
    let output = std::process::Command::new(exe)
        .args([CHILD_COMMAND, "--probe"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if String::from_utf8_lossy(&output.stdout).trim() == PROBE_ANSWER {
        Ok(())
    } else {
        Err(format!(
            "{} is not a docqa binary with `{CHILD_COMMAND}`",
            exe.display()
        ))
    }
}

/// Writes the result as [`ChildLine`]s, a page at a time.
fn write_lines(result: Result<ExtractedText, ExtractError>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut line = |item: &ChildLine| -> std::io::Result<()> {
        serde_json::to_writer(&mut out, item)?;
        out.write_all(b"\n")
    };
    match result {
        Ok(text) => {
            let mut geometry = text.geometry.into_iter();
            for page in text.pages {
                line(&ChildLine::Page(page))?;
                if let Some(Some(page_geometry)) = geometry.next() {
                    line(&ChildLine::Geometry(page_geometry))?;
                }
            }
            line(&ChildLine::Done {
                unreadable_pages: text.unreadable_pages,
                notes: text.notes,
                needs_ocr: text.needs_ocr,
            })?;
        }
        Err(error) => line(&ChildLine::Failed(error))?,
    }
    out.flush()
}

/// The child's side: `docqa extract-child CONTENT_TYPE PATH MAX_PAGES
/// MAX_DOCUMENT_CHARS` (or `--probe`).
/// Writes the JSON result on stdout; returns the exit code.
pub fn child_main(args: &[String]) -> i32 {
    match args {
        [flag] if flag == "--probe" => {
            println!("{PROBE_ANSWER}");
            0
        }
        [content_type, path, max_pages, max_chars] => {
            let limits = match (max_pages.parse(), max_chars.parse()) {
                (Ok(max_pages), Ok(max_chars)) => ExtractLimits { max_pages, max_chars },
                _ => {
                    eprintln!("the limits must be numbers: {max_pages} {max_chars}");
                    return 2;
                }
            };
            let result = match content_type.parse::<ContentType>() {
                Err(e) => Err(ExtractError::Io(e)),
                Ok(content_type) => std::fs::read(path)
                    .map_err(|e| ExtractError::Io(e.to_string()))
                    .and_then(|bytes| super::extract_within(content_type, &bytes, limits)),
            };
            match write_lines(result) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("writing the result: {e}");
                    1
                }
            }
        }
        _ => {
            eprintln!("usage: docqa {CHILD_COMMAND} CONTENT_TYPE PATH MAX_PAGES MAX_DOCUMENT_CHARS");
            2
        }
    }
}
