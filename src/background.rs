//! Ingestion work (parsing, chunking, embedding passages) runs on threads the
//! kernel schedules below everything else, so that a search, whose query is
//! embedded at normal priority, is not starved while a large upload is processed.

use std::thread;

/// At nice 10 a runnable normal-priority thread gets ~90 % of a contended core.
const BACKGROUND_NICE: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("could not start a thread: {0}")]
    Spawn(String),
    #[error("the background thread panicked")]
    Panicked,
}

/// Lowers the calling thread's priority (Linux, where nice is per thread; a
/// no-op elsewhere). Failing to do so only costs search latency, so it is logged.
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on our own thread id only
        // changes that thread's nice value.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE)
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a thread's priority");
        }
    }
}

/// Runs `work` on a new low-priority thread and awaits its result. The thread is
/// not tied to the caller: if the caller stops waiting (a timeout), the work
/// finishes on its own and its result is dropped.
pub async fn run<T, F>(name: &str, work: F) -> Result<T, BackgroundError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_current_thread_priority();
            // The receiver may be gone after a timeout; nothing is waiting then.
            let _ = done.send(work());
        })
        .map_err(|e| BackgroundError::Spawn(e.to_string()))?;
    // A closed channel without a value means `work` panicked.
    result.await.map_err(|_| BackgroundError::Panicked)
}

/// What a caught panic said.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_and_reports_a_panic() {
        assert_eq!(run("test", || 41 + 1).await.unwrap(), 42);
        let failed = run("test", || -> u32 { panic!("parser bug") }).await;
        assert!(matches!(failed, Err(BackgroundError::Panicked)));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_thread_runs_at_a_lower_priority() {
        let nice = run("test", || {
            // SAFETY: reading our own thread's nice value.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) }
        })
        .await
        .unwrap();
        // SAFETY: as above, for the test's own thread.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) };
        assert!(nice > ours || nice == 19, "background nice {nice}, caller {ours}");
    }
}
