//! What is in flight in this process — running jobs, uploads being accepted —
//! and the holds that stop it.
//!
//! Deleting a collection or a document first takes a hold on it: no job or
//! upload of it starts while the hold lasts, running jobs are cancelled, and the
//! hold is granted only once everything in flight under it has let go. So
//! nothing writes to an index, a shard, a row or a file that is being removed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::domain::{CollectionName, DocumentId, Job};

/// What a hold covers: a collection (all its jobs) or one document's job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HoldTarget {
    Collection(CollectionName),
    Document(DocumentId),
}

pub struct InFlight {
    state: Mutex<State>,
    /// Bumped at every change, for those waiting on one.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    work: HashMap<u64, Running>,
    next: u64,
    holds: HashSet<HoldTarget>,
}

struct Running {
    collection: CollectionName,
    document: Option<DocumentId>,
    cancel: CancellationToken,
}

impl Running {
    fn is_under(&self, target: &HoldTarget) -> bool {
        match target {
            HoldTarget::Collection(collection) => &self.collection == collection,
            HoldTarget::Document(document) => self.document == Some(*document),
        }
    }
}

impl State {
    fn is_held(&self, collection: &CollectionName, document: Option<DocumentId>) -> bool {
        self.holds.contains(&HoldTarget::Collection(collection.clone()))
            || document.is_some_and(|d| self.holds.contains(&HoldTarget::Document(d)))
    }
}

impl InFlight {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a set of entries, consistent after any one statement.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a job that is about to run; `None` while its collection or
    /// document is held (being deleted).
    pub fn start(self: &Arc<Self>, job: &Job) -> Option<Work> {
        self.register(&job.collection, job.document_id)
    }

    /// Registers an upload being written into a collection (its files stored,
    /// its rows inserted); `None` while the collection is held.
    pub fn enter(self: &Arc<Self>, collection: &CollectionName) -> Option<Work> {
        self.register(collection, None)
    }

    fn register(self: &Arc<Self>, collection: &CollectionName, document: Option<DocumentId>) -> Option<Work> {
        let cancel = CancellationToken::new();
        let mut state = self.state();
        if state.is_held(collection, document) {
            return None;
        }
        let id = state.next;
        state.next += 1;
        state.work.insert(
            id,
            Running {
                collection: collection.clone(),
                document,
                cancel: cancel.clone(),
            },
        );
        Some(Work {
            registry: Arc::clone(self),
            id,
            cancel,
        })
    }

    /// Holds `target`: waits for an earlier hold on it to end, then cancels the
    /// work under it and returns once none is in flight any more. Nothing under
    /// it starts until the hold is dropped.
    pub async fn hold(self: &Arc<Self>, target: HoldTarget) -> Hold {
        let mut changes = self.changed.subscribe();
        loop {
            {
                let mut state = self.state();
                if state.holds.insert(target.clone()) {
                    break;
                }
            }
            // The sender lives as long as `self`.
            let _ = changes.changed().await;
        }
        // From here the hold is released however this future ends.
        let hold = Hold {
            registry: Arc::clone(self),
            target,
        };
        loop {
            let running = {
                let state = self.state();
                let mut running = 0;
                for work in state.work.values().filter(|work| work.is_under(&hold.target)) {
                    work.cancel.cancel();
                    running += 1;
                }
                running
            };
            if running == 0 {
                return hold;
            }
            tracing::info!(target = ?hold.target, running, "waiting for cancelled work to stop");
            let _ = changes.changed().await;
        }
    }
}

/// Work registered as in flight; dropping it says it let go of everything.
pub struct Work {
    registry: Arc<InFlight>,
    id: u64,
    cancel: CancellationToken,
}

impl Work {
    /// Resolves when a delete wants this work to stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// The token a delete cancels, for the work to check at its steps.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.registry.state().work.remove(&self.id);
        self.registry.bump();
    }
}

/// A collection or document held for deletion; jobs under it may start again
/// once this is dropped.
pub struct Hold {
    registry: Arc<InFlight>,
    target: HoldTarget,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.registry.state().holds.remove(&self.target);
        self.registry.bump();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{JobId, JobKind, JobProgress, JobStatus};

    fn job(collection: &str, document: Option<DocumentId>) -> Job {
        Job {
            id: JobId::new(),
            kind: if document.is_some() {
                JobKind::Ingest
            } else {
                JobKind::Reindex
            },
            collection: CollectionName::parse(collection).unwrap(),
            document_id: document,
            status: JobStatus::Running,
            progress: JobProgress::at(crate::domain::JobStage::Extract, 0, 1),
            error: None,
            attempts: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    /// Holds `target` on a task of its own: a hold may have to wait.
    fn hold_in_background(registry: &Arc<InFlight>, target: HoldTarget) -> tokio::task::JoinHandle<Hold> {
        let registry = Arc::clone(registry);
        tokio::spawn(async move { registry.hold(target).await })
    }

    /// The hold a background task took, within 5 s.
    async fn taken(holding: tokio::task::JoinHandle<Hold>) -> Hold {
        tokio::time::timeout(Duration::from_secs(5), holding)
            .await
            .expect("the hold is taken in time")
            .expect("the holding task ran")
    }

    #[tokio::test]
    async fn a_hold_cancels_the_jobs_under_it_and_waits_until_they_let_go() {
        let registry = InFlight::new();
        let document = DocumentId::new();
        let ingest = registry.start(&job("a", Some(document))).unwrap();
        let other = registry.start(&job("b", None)).unwrap();

        let holding = hold_in_background(&registry, HoldTarget::Collection(CollectionName::parse("a").unwrap()));
        tokio::time::timeout(Duration::from_secs(5), ingest.cancelled())
            .await
            .expect("cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!holding.is_finished(), "the hold waits for the job to let go");
        assert!(!other.cancel.is_cancelled(), "a job of another collection runs on");

        drop(ingest);
        let hold = taken(holding).await;
        assert!(
            registry.start(&job("a", Some(DocumentId::new()))).is_none(),
            "nothing starts under a hold"
        );
        assert!(registry.start(&job("b", Some(DocumentId::new()))).is_some());
        drop(hold);
        assert!(registry.start(&job("a", Some(document))).is_some(), "the hold is gone");
    }

    #[tokio::test]
    async fn a_document_hold_stops_only_that_documents_job() {
        let registry = InFlight::new();
        let (mine, theirs) = (DocumentId::new(), DocumentId::new());
        let _running = registry.start(&job("a", Some(theirs))).unwrap();
        let hold = tokio::time::timeout(Duration::from_secs(5), registry.hold(HoldTarget::Document(mine)))
            .await
            .expect("nothing to wait for");
        assert!(registry.start(&job("a", Some(mine))).is_none());
        drop(hold);
        assert!(registry.start(&job("a", Some(mine))).is_some());
    }

    #[tokio::test]
    async fn a_collection_hold_waits_for_uploads_being_accepted_without_cancelling_them() {
        let registry = InFlight::new();
        let collection = CollectionName::parse("a").unwrap();
        let upload = registry.enter(&collection).unwrap();
        let holding = hold_in_background(&registry, HoldTarget::Collection(collection.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!holding.is_finished(), "the hold waits for the upload");
        drop(upload);
        let _hold = taken(holding).await;
        assert!(
            registry.enter(&collection).is_none(),
            "no upload enters a held collection"
        );
    }

    #[tokio::test]
    async fn holds_on_one_target_take_turns() {
        let registry = InFlight::new();
        let target = HoldTarget::Collection(CollectionName::parse("a").unwrap());
        let first = registry.hold(target.clone()).await;
        let second = hold_in_background(&registry, target);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        drop(first);
        taken(second).await;
    }
}
