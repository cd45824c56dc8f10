//! Text out of images by OCR: Tesseract's command-line program (Debian's
//! `tesseract-ocr`, Apache-2.0), one process a document with the extraction
//! child's memory and CPU limits, one OCR thread (the ingestion workers already
//! share the cores with searches). Tesseract reads PNG, JPEG, TIFF (every frame
//! a page) and WebP itself; its TSV output gives every word with its page, line,
//! box and confidence, read here line by line into pages.
//!
//! Probed once at start: without the program or its languages the server runs,
//! `/readyz` says `ocr: unavailable`, and an image fails with that reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use super::isolated::{Limits, last_line};
use super::{ExtractError, ExtractLimits, ExtractedText, PageProgress};
use crate::domain::{PageGeometry, Rect, WordBox};

/// Scanned PDF pages are rendered at this resolution for OCR (README "Images
/// (OCR)": the character error rate by resolution on corpus pages).
const RENDER_DPI: u32 = 200;
/// Poppler's page renderer (Debian poppler-utils).
const RENDERER: &str = "pdftoppm";

/// The OCR engine as found at start.
#[derive(Debug, Clone)]
pub struct Ocr {
    command: PathBuf,
    languages: String,
    /// The engine's version, or why it cannot be used.
    found: Result<String, String>,
    /// Orientation and script detection is installed (`osd`): pages scanned
    /// sideways or upside down are turned before they are read.
    orientation: bool,
    /// The PDF page renderer's version, or why it cannot be used.
    renderer: Result<String, String>,
    max_pages: usize,
    /// All the OCR of one document, at most.
    timeout: Duration,
}

impl Ocr {
    /// Asks `command --version` and `--list-langs`; never fails the start.
    pub fn probe(command: &Path, languages: &str, max_pages: usize, timeout: Duration) -> Self {
        let run_program = |program: &Path, arg: &str| -> Result<String, String> {
            let output = std::process::Command::new(program)
                .arg(arg)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("{} cannot be run: {e}", program.display()))?;
            // Tesseract 3 printed these on stderr.
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            Ok(text)
        };
        let run = |arg: &str| run_program(command, arg);
        let mut orientation = false;
        let found = run("--version").and_then(|version| {
            let version = version.lines().next().unwrap_or_default().trim().to_string();
            let installed = run("--list-langs")?;
            let installed: Vec<&str> = installed.lines().skip(1).map(str::trim).collect();
            orientation = installed.contains(&"osd");
            let missing: Vec<&str> = languages.split('+').filter(|l| !installed.contains(l)).collect();
            if missing.is_empty() {
                Ok(format!("{version} ({languages})"))
            } else {
                Err(format!(
                    "OCR_LANGUAGES: {} not installed for {version} (apt-get install tesseract-ocr-<lang>)",
                    missing.join(", ")
                ))
            }
        });
        let renderer = run_program(Path::new(RENDERER), "-v")
            .map(|v| v.lines().next().unwrap_or_default().trim().to_string())
            .map_err(|why| format!("{why} (apt-get install poppler-utils): scanned PDF pages cannot be rendered"));
        match (&found, &renderer) {
            (Ok(version), Ok(_)) => tracing::info!(engine = %version, "OCR available"),
            (Ok(version), Err(why)) => {
                tracing::warn!(engine = %version, reason = %why, "OCR available for images, not for scanned PDF pages")
            }
            (Err(why), _) => tracing::warn!(reason = %why, "OCR unavailable: images and scanned pages will fail"),
        }
        Self {
            command: command.to_path_buf(),
            languages: languages.to_string(),
            found,
            orientation,
            renderer,
            max_pages,
            timeout,
        }
    }

    /// The engine's version, or why there is none.
    pub fn status(&self) -> Result<&str, &str> {
        self.found.as_deref().map_err(String::as_str)
    }

    /// Reads the pages of a PDF that have no usable text layer
    /// (`text.needs_ocr`): each rendered at [`RENDER_DPI`] into a temporary
    /// PNG, then recognised. Pages past `OCR_MAX_PAGES` or `OCR_TIMEOUT_SECS`
    /// are left unread and said so; the document fails only when it has no
    /// text at all.
    pub async fn pdf_pages(
        &self,
        pdf: &Path,
        text: &mut ExtractedText,
        page_timeout: Duration,
        memory_bytes: u64,
        limits: ExtractLimits,
        progress: &PageProgress,
    ) -> Result<(), ExtractError> {
        let wanted = std::mem::take(&mut text.needs_ocr);
        if wanted.is_empty() {
            return Ok(());
        }
        let unavailable = match (&self.found, &self.renderer) {
            (Err(why), _) | (_, Err(why)) => Some(why.clone()),
            _ => None,
        };
        if let Some(why) = unavailable {
            if !text.has_text() {
                return Err(ExtractError::OcrUnavailable(why));
            }
            text.notes
                .push(format!("pages without a text layer not read: ocr unavailable: {why}"));
            text.unreadable_pages.extend(&wanted);
            return Ok(());
        }
        let scratch = tempfile::tempdir().map_err(|e| ExtractError::Io(format!("a directory for OCR: {e}")))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut done = Vec::new();
        // Why the rest was left, and the error it is when nothing else was read.
        let mut left: Option<(String, ExtractError)> = None;
        let total = wanted.len() as u64;
        for (n, &page) in wanted.iter().enumerate() {
            progress.send_replace((n as u64, total));
            if left.is_some() {
            } else if n >= self.max_pages {
                let limit = self.max_pages;
                left = Some((
                    format!("OCR_MAX_PAGES ({limit}) reached"),
                    ExtractError::TooManyOcrPages { limit },
                ));
            } else if tokio::time::Instant::now() >= deadline {
                let secs = self.timeout.as_secs();
                left = Some((
                    format!("OCR_TIMEOUT_SECS ({secs} s) reached"),
                    ExtractError::Timeout(secs),
                ));
            }
            if left.is_some() {
                text.unreadable_pages.push(page);
                continue;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let timeout = page_timeout.min(remaining);
            let image = scratch.path().join(format!("page-{page}"));
            self.render(pdf, page, &image, timeout, memory_bytes).await?;
            let read = self
                .recognize(&image.with_extension("png"), timeout, memory_bytes, limits)
                .await;
            let _ = tokio::fs::remove_file(image.with_extension("png")).await;
            match read {
                Ok(recognised) => {
                    text.take_ocr_page(page, recognised, 72.0 / RENDER_DPI as f32);
                    done.push(page);
                }
                Err(ExtractError::Timeout(secs)) => {
                    left = Some((
                        format!("page {page} took longer than {secs} s"),
                        ExtractError::Timeout(secs),
                    ));
                    text.unreadable_pages.push(page);
                }
                Err(other) => return Err(other),
            }
        }
        if !done.is_empty() {
            text.notes.push(format!("pages read by OCR: {done:?}"));
        }
        if let Some((why, error)) = left {
            text.notes.push(format!("pages not read by OCR: {why}"));
            if !text.has_text() {
                return Err(error);
            }
        }
        text.unreadable_pages.sort_unstable();
        Ok(())
    }

    /// Renders one page to `{output}.png` with pdftoppm, under the limits.
    async fn render(
        &self,
        pdf: &Path,
        page: u32,
        output: &Path,
        timeout: Duration,
        memory_bytes: u64,
    ) -> Result<(), ExtractError> {
        let mut command = limited(Path::new(RENDERER), timeout, memory_bytes);
        command
            .args(["-r", &RENDER_DPI.to_string(), "-gray", "-png", "-singlefile"])
            .args(["-f", &page.to_string(), "-l", &page.to_string()])
            .arg(pdf)
            .arg(output)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .map_err(|e| ExtractError::OcrUnavailable(format!("{RENDERER} cannot be run: {e}")))?;
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| ExtractError::Timeout(timeout.as_secs()))?
            .map_err(|e| ExtractError::Io(format!("waiting for {RENDERER}: {e}")))?;
        if !output.status.success() {
            return Err(ExtractError::Corrupt(format!(
                "page {page} could not be rendered for OCR: {}",
                last_line(&String::from_utf8_lossy(&output.stderr))
            )));
        }
        Ok(())
    }

    /// Recognises every page (frame) of an image file.
    pub async fn recognize(
        &self,
        path: &Path,
        timeout: Duration,
        memory_bytes: u64,
        limits: ExtractLimits,
    ) -> Result<ExtractedText, ExtractError> {
        if let Err(why) = &self.found {
            return Err(ExtractError::OcrUnavailable(why.clone()));
        }
        let mut command = limited(&self.command, timeout, memory_bytes);
        command
            .arg(path)
            .arg("stdout")
            .arg("-l")
            .arg(&self.languages)
            // Page segmentation 1 is 3 (the default) with orientation detection
            // first: a page scanned sideways reads as text, not as noise.
            .args(["--psm", if self.orientation { "1" } else { "3" }])
            .arg("tsv")
            .env("OMP_THREAD_LIMIT", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| ExtractError::OcrUnavailable(format!("{} cannot be run: {e}", self.command.display())))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ExtractError::Io("the OCR process has no output".into()));
        };
        let stderr = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut text = String::new();
            let _ = stderr.take(64 * 1024).read_to_string(&mut text).await;
            text
        });
        let max_pages = self.max_pages.min(limits.max_pages);
        let read = async {
            let mut pages = TsvPages::default();
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Some(line) = lines
                .next_line()
                .await
                .map_err(|e| ExtractError::Io(format!("reading the OCR output: {e}")))?
            {
                pages.push_line(&line);
                if pages.pages.len() > max_pages {
                    return Err(ExtractError::TooManyOcrPages { limit: max_pages });
                }
                if pages.chars > limits.max_chars {
                    return Err(ExtractError::TooMuchText {
                        limit: limits.max_chars,
                    });
                }
            }
            let status = child
                .wait()
                .await
                .map_err(|e| ExtractError::Io(format!("waiting for the OCR process: {e}")))?;
            Ok((pages, status))
        };
        // Dropping the child on a timeout or an error kills it (kill_on_drop).
        let (pages, status) = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ExtractError::Timeout(timeout.as_secs()))??;
        if !status.success() {
            return Err(ExtractError::Corrupt(format!(
                "the image could not be read by OCR ({status}): {}",
                last_line(&stderr.await.unwrap_or_default())
            )));
        }
        Ok(pages.finish())
    }
}

/// A helper process under the extraction child's limits: address space, CPU
/// time, low priority; no input; killed when dropped.
fn limited(program: &Path, timeout: Duration, memory_bytes: u64) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.stdin(Stdio::null()).kill_on_drop(true);
    let limits = Limits {
        memory_bytes,
        cpu_seconds: timeout.as_secs() + 1,
    };
    // SAFETY: only async-signal-safe calls (setrlimit, setpriority) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            limits.apply();
            Ok(())
        });
    }
    command
}

/// Tesseract's TSV output, assembled into pages: words joined by spaces, lines
/// by line breaks, paragraphs and blocks by blank lines.
#[derive(Debug, Default)]
struct TsvPages {
    pages: Vec<String>,
    /// Each page's size and its words' boxes, in the image's pixels.
    geometry: Vec<PageGeometry>,
    /// Word confidences per page (0–100), for the record.
    confidence: Vec<(f64, usize)>,
    /// The (block, paragraph, line) of the last word on the current page.
    last: Option<(u32, u32, u32)>,
    chars: usize,
}

impl TsvPages {
    fn push_line(&mut self, line: &str) {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 12 {
            return;
        }
        let number = |i: usize| fields[i].parse::<u32>().ok();
        let (Some(level), Some(page)) = (number(0), number(1)) else {
            return; // the header line
        };
        let page = page.max(1) as usize;
        while self.pages.len() < page {
            self.pages.push(String::new());
            self.geometry.push(PageGeometry {
                width: 0.0,
                height: 0.0,
                words: Vec::new(),
            });
            self.confidence.push((0.0, 0));
            self.last = None;
        }
        let [left, top, width, height] = [6, 7, 8, 9].map(|i| fields[i].parse::<f32>().unwrap_or(0.0));
        if level == 1 {
            let geometry = &mut self.geometry[page - 1];
            (geometry.width, geometry.height) = (width, height);
        }
        let word = fields[11].trim();
        if level != 5 || word.is_empty() {
            return;
        }
        let place = (number(2).unwrap_or(0), number(3).unwrap_or(0), number(4).unwrap_or(0));
        let text = &mut self.pages[page - 1];
        match self.last {
            None => {}
            Some((block, paragraph, _)) if (block, paragraph) != (place.0, place.1) => text.push_str("\n\n"),
            Some((_, _, line)) if line != place.2 => text.push('\n'),
            Some(_) => text.push(' '),
        }
        let start = text.len() as u32;
        text.push_str(word);
        self.geometry[page - 1].words.push(WordBox {
            start,
            end: text.len() as u32,
            rect: Rect {
                x: left,
                y: top,
                width,
                height,
            },
        });
        self.chars += word.chars().count() + 1;
        self.last = Some(place);
        if let Ok(confidence) = fields[10].parse::<f64>()
            && confidence >= 0.0
        {
            let (sum, count) = &mut self.confidence[page - 1];
            *sum += confidence;
            *count += 1;
        }
    }

    fn finish(self) -> ExtractedText {
        let means: Vec<Option<f32>> = self
            .confidence
            .iter()
            .map(|&(sum, count)| (count > 0).then(|| (sum / count as f64) as f32))
            .collect();
        let shown: Vec<String> = means
            .iter()
            .map(|mean| mean.map_or_else(|| "-".to_string(), |mean| format!("{mean:.0}")))
            .collect();
        ExtractedText {
            pages: self.pages,
            notes: vec![format!("OCR, mean word confidence by page: {}", shown.join(", "))],
            geometry: self.geometry.into_iter().map(Some).collect(),
            ocr_pages: means
                .into_iter()
                .enumerate()
                .map(|(i, mean)| (i as u32 + 1, mean))
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_lines_paragraphs_and_pages() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t1241\t1754\t-1\t
5\t1\t1\t1\t1\t1\t10\t10\t50\t20\t96.5\tThe
5\t1\t1\t1\t1\t2\t70\t10\t50\t20\t90.1\tCrazy
5\t1\t1\t1\t2\t1\t10\t40\t50\t20\t88\tOnes
5\t1\t2\t1\t1\t1\t10\t90\t50\t20\t80\tOctober
1\t2\t0\t0\t0\t0\t0\t0\t1241\t1754\t-1\t
1\t3\t0\t0\t0\t0\t0\t0\t1241\t1754\t-1\t
5\t3\t1\t1\t1\t1\t10\t10\t50\t20\t70\tlast
5\t3\t1\t1\t1\t2\t10\t10\t50\t20\t-1\t ";
        let mut pages = TsvPages::default();
        for line in tsv.lines() {
            pages.push_line(line);
        }
        let text = pages.finish();
        assert_eq!(text.pages, vec!["The Crazy\nOnes\n\nOctober", "", "last"]);
        assert_eq!(text.notes, vec!["OCR, mean word confidence by page: 89, -, 70"]);
        let first = text.geometry[0].as_ref().unwrap();
        assert_eq!((first.width, first.height), (1241.0, 1754.0));
        let crazy = first.words[1];
        assert_eq!(&text.pages[0][crazy.start as usize..crazy.end as usize], "Crazy");
        assert_eq!((crazy.rect.x, crazy.rect.y, crazy.rect.width), (70.0, 10.0, 50.0));
        let october = first.words[3];
        assert_eq!(&text.pages[0][october.start as usize..october.end as usize], "October");
        let confidence: Vec<_> = text.ocr_pages.iter().map(|(p, c)| (*p, c.map(f32::round))).collect();
        assert_eq!(confidence, vec![(1, Some(89.0)), (2, None), (3, Some(70.0))]);
    }
}
