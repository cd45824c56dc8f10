//! The embedded index: Qdrant Edge shards under `<data dir>/index`.
//!
//! A collection's generation 0 lives in `index/<collection>`, generation n > 0 in
//! `index/<collection>.g<n>`; `index/<collection>.live` names the live one (no
//! file: 0). A re-index fills the next generation and swaps it in by rewriting
//! that file atomically — the embedded counterpart of a Qdrant alias.
//!
//! Edge 0.7 does not replay its WAL on load, so every write is flushed to the
//! segments before it returns. Its `flush` panics if another writer holds the
//! WAL, so writes to a shard are serialised here; it also runs in `Drop` and
//! panics when the shard's files are gone, so a shard is closed (flushed) before
//! its directory is removed and is never dropped while a thread unwinds
//! ([`OpenShard`]). Creating, dropping and swapping generations run on a blocking
//! thread under one lock, to completion even when the caller goes away.
//!
//! Edge runs no optimizer of its own: without [`ShardSlot::optimize`] a shard
//! stays one growing segment, searched point by point, whose deleted points are
//! never reclaimed. So when a shard is loaded, and once its writes go quiet, its
//! optimizers run on a blocking thread (one at a time per shard, as the
//! writer): segments past Edge's indexing threshold get their HNSW index, small
//! ones are merged, deleted points vacuumed. Waiting for the quiet is what keeps
//! a bulk load fast: run after every batch, the optimizers indexed and merged
//! the growing segments again and again, holding the writer each time
//! ([`optimize_wait`]).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, DeletePayloadOp, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations,
    Filter as QdrantFilter, Fusion, IsEmptyCondition, JsonPath, Match, MatchAny, MatchValue, Modifier, NamedQuery,
    Payload, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId, PointInsertOperations, PointOperations,
    PointStruct, Prefetch, QueryEnum, QueryRequest, ScoringQuery, SetPayloadOp, UpdateOperation, ValueVariants, Vector,
    VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};

use super::{
    ACCESS_FIELD, BM25_VECTOR, ChunkPayload, ChunkPoint, DENSE_VECTOR, DOCUMENT_ID_FIELD, HybridQuery, IndexError,
    IndexLayout, PENDING_FIELD, Rebuild, ScoredChunk, VectorIndex,
};
use crate::domain::{CollectionName, DocumentId, Filter, Metadata, MetadataValue, Readers};

pub struct EdgeIndex {
    edge: Arc<Edge>,
}

/// The shards and the directory they live in, shared with blocking threads.
struct Edge {
    root: PathBuf,
    shards: RwLock<Shards>,
    /// Held while a collection's directories are created, removed or swapped:
    /// one such step at a time.
    lifecycle: Mutex<()>,
}

#[derive(Default)]
struct Shards {
    /// The live shard of each collection opened so far.
    live: HashMap<String, Arc<ShardSlot>>,
    /// Rebuilds in progress, by collection.
    rebuilds: HashMap<String, Arc<ShardSlot>>,
    /// Collections whose directories are being created or removed: never loaded
    /// from disk meanwhile (two shards on one directory would share a WAL).
    changing: HashSet<String>,
}

/// A shard, its generation, and the lock that lets one writer at a time flush
/// it. `None` once the shard is closed (dropped or swapped out).
struct ShardSlot {
    generation: u32,
    shard: RwLock<Option<OpenShard>>,
    writer: Mutex<()>,
    /// Writes since the optimizers last looked at the shard.
    optimize_wanted: AtomicBool,
    /// An optimizer task runs (or waits for the writes to go quiet) for this shard.
    optimizing: AtomicBool,
    /// When the last write to the shard ended.
    last_write: Mutex<Option<tokio::time::Instant>>,
}

impl ShardSlot {
    fn new(generation: u32, shard: OpenShard) -> Arc<Self> {
        Arc::new(Self {
            generation,
            shard: RwLock::new(Some(shard)),
            writer: Mutex::new(()),
            optimize_wanted: AtomicBool::new(false),
            optimizing: AtomicBool::new(false),
            last_write: Mutex::new(None),
        })
    }

    /// Waits for readers and the writer, then flushes and closes the shard while
    /// its directory still exists. Later users of the slot find it closed.
    fn close(&self) -> Result<(), IndexError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let shard = self.shard.write().unwrap_or_else(|p| p.into_inner()).take();
        match shard {
            Some(shard) => shard.close(),
            None => Ok(()),
        }
    }

    /// Applies operations and flushes, as the one writer.
    fn write(&self, operations: Vec<UpdateOperation>, collection: &str) -> Result<(), IndexError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let guard = read(&self.shard);
        let shard = guard
            .as_ref()
            .ok_or_else(|| IndexError::MissingCollection(collection.to_string()))?;
        for operation in operations {
            shard.update(operation).map_err(op_error)?;
        }
        shard.flush();
        Ok(())
    }

    /// Runs Edge's optimizers until they have nothing left to do, as the
    /// writer (Edge's flush must not meet another writer); searches go on
    /// meanwhile. Whether anything changed.
    fn optimize(&self) -> Result<bool, IndexError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let guard = read(&self.shard);
        let Some(shard) = guard.as_ref() else {
            return Ok(false);
        };
        let optimized = shard.optimize().map_err(op_error)?;
        if optimized {
            shard.flush();
        }
        Ok(optimized)
    }

    fn wants_optimizing(&self) -> bool {
        self.optimize_wanted.load(Ordering::Acquire)
    }

    fn last_write(&self) -> Option<tokio::time::Instant> {
        *self.last_write.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn written(&self) {
        *self.last_write.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
    }
}

/// How long a shard's writes must have been quiet before its optimizers run:
/// the batches of one upload, or of a bulk load, come closer together.
const WRITES_QUIET_FOR: Duration = Duration::from_secs(2);
/// The longest the optimizers wait for the quiet: a shard written to without a
/// pause still gets its index.
const OPTIMIZE_WITHIN: Duration = Duration::from_secs(60);

/// How much longer the optimizers wait, given when the last write ended and
/// when they began to wait; `None`: run now.
fn optimize_wait(
    last_write: Option<tokio::time::Instant>,
    waiting_since: tokio::time::Instant,
    now: tokio::time::Instant,
) -> Option<Duration> {
    let quiet = WRITES_QUIET_FOR.checked_sub(now.saturating_duration_since(last_write?))?;
    let deadline = OPTIMIZE_WITHIN.checked_sub(now.saturating_duration_since(waiting_since))?;
    Some(quiet.min(deadline)).filter(|wait| !wait.is_zero())
}

/// Asks for the shard's optimizers to run, after a write or a load: once the
/// writes have gone quiet, on a blocking thread, one task per shard at a time,
/// which looks again as long as writes came meanwhile. Without a Tokio runtime
/// (never in the server), nothing runs.
fn request_optimize(slot: &Arc<ShardSlot>, collection: &str) {
    slot.optimize_wanted.store(true, Ordering::Release);
    if slot.optimizing.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        slot.optimizing.store(false, Ordering::Release);
        return;
    };
    // Weak while it waits: a shard nobody else holds any more (its index
    // dropped, the server stopping) is closed now, not once the wait is over.
    let slot = Arc::downgrade(slot);
    let collection = collection.to_string();
    // Made out here, so that it also clears the flag for a task dropped before
    // it first ran.
    let abandoned = Abandoned(Some(slot.clone()));
    // An async task while it waits, so that a runtime shutting down does not
    // wait for it.
    runtime.spawn(async move {
        let mut abandoned = abandoned;
        loop {
            while slot.upgrade().is_some_and(|slot| slot.wants_optimizing()) {
                let waiting_since = tokio::time::Instant::now();
                loop {
                    let Some(last_write) = slot.upgrade().map(|slot| slot.last_write()) else {
                        return;
                    };
                    match optimize_wait(last_write, waiting_since, tokio::time::Instant::now()) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => break,
                    }
                }
                let Some(optimizing) = slot.upgrade() else {
                    return;
                };
                optimizing.optimize_wanted.store(false, Ordering::Release);
                let started = Instant::now();
                let optimized = tokio::task::spawn_blocking(move || guarded("optimize", || optimizing.optimize()))
                    .await
                    .map_err(task_failed)
                    .and_then(|result| result);
                match optimized {
                    Ok(true) => tracing::info!(
                        collection = %collection,
                        ms = started.elapsed().as_millis() as u64,
                        "index optimized"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(collection = %collection, error = %e, "optimizing the index failed"),
                }
            }
            let Some(held) = slot.upgrade() else {
                return;
            };
            held.optimizing.store(false, Ordering::Release);
            // A request between the last look and the store above found the
            // task still running: take it up unless another task has.
            if !held.wants_optimizing() || held.optimizing.swap(true, Ordering::AcqRel) {
                abandoned.0 = None;
                break;
            }
        }
    });
}

/// Clears a slot's `optimizing` when its optimizer task is dropped unfinished
/// (the runtime it ran on shut down while the slot lives on), so that the next
/// write starts another.
struct Abandoned(Option<std::sync::Weak<ShardSlot>>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take().and_then(|slot| slot.upgrade()) {
            slot.optimizing.store(false, Ordering::Release);
        }
    }
}

/// An open Edge shard that is never dropped in a way that can abort the process.
///
/// Edge 0.7 flushes in `Drop` and panics when that flush fails (its files
/// removed, say); a panic in a destructor while the thread is already unwinding
/// aborts the whole server. So a shard is flushed explicitly before it is
/// dropped, the drop runs where a panic is caught, and a shard whose flush failed
/// — or that would be dropped during unwinding — is leaked instead (logged: a
/// little memory and a few descriptors, against the process).
struct OpenShard(ManuallyDrop<EdgeShard>);

impl OpenShard {
    fn new(shard: EdgeShard) -> Self {
        Self(ManuallyDrop::new(shard))
    }

    /// Flushes, then drops: an error, never a panic, when the flush fails.
    fn close(self) -> Result<(), IndexError> {
        let path = self.0.path().display().to_string();
        match guarded("flush", || {
            self.0.flush();
            Ok(())
        }) {
            Ok(()) => {
                drop(self);
                Ok(())
            }
            Err(e) => {
                tracing::error!(shard = %path, error = %e, "could not flush a shard before closing it; leaking it");
                std::mem::forget(self);
                Err(e)
            }
        }
    }
}

impl std::ops::Deref for OpenShard {
    type Target = EdgeShard;

    fn deref(&self) -> &EdgeShard {
        &self.0
    }
}

impl Drop for OpenShard {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let shard = unsafe { ManuallyDrop::take(&mut self.0) };
        if std::thread::panicking() {
            tracing::error!(shard = %shard.path().display(), "not closing a shard while unwinding; leaking it");
            std::mem::forget(shard);
            return;
        }
        let path = shard.path().display().to_string();
        if let Err(e) = guarded("close", move || {
            drop(shard);
            Ok(())
        }) {
            tracing::error!(shard = %path, error = %e, "closing a shard failed");
        }
    }
}

/// Runs a call into Edge where a panic is caught and becomes an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, IndexError>) -> Result<T, IndexError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(IndexError::Operation(format!(
            "index {what} failed: {}",
            crate::background::panic_message(&*panic)
        ))),
    }
}

fn op_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Operation(e.to_string())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while holding the lock leaves the shard as Qdrant left it; go on.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn task_failed(e: tokio::task::JoinError) -> IndexError {
    IndexError::Operation(format!("index task failed: {e}"))
}

impl Edge {
    fn shards(&self) -> RwLockWriteGuard<'_, Shards> {
        self.shards.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lifecycle(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard_dir(&self, collection: &CollectionName, generation: u32) -> PathBuf {
        match generation {
            0 => self.root.join(collection.as_str()),
            n => self.root.join(format!("{collection}.g{n}")),
        }
    }

    fn live_file(&self, collection: &CollectionName) -> PathBuf {
        self.root.join(format!("{collection}.live"))
    }

    fn live_generation(&self, collection: &CollectionName) -> Result<u32, IndexError> {
        match std::fs::read_to_string(self.live_file(collection)) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| IndexError::Operation(format!("{collection}.live holds {text:?}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(IndexError::Unavailable(e.to_string())),
        }
    }

    /// Points the collection at `generation`: a new file renamed over the old one,
    /// so that a crash leaves either pointer, never half of one.
    fn set_live_generation(&self, collection: &CollectionName, generation: u32) -> Result<(), IndexError> {
        let path = self.live_file(collection);
        let staged = self.root.join(format!("{collection}.live.new"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&staged)?;
            file.write_all(generation.to_string().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&staged, &path)?;
            std::fs::File::open(&self.root)?.sync_all()
        };
        write().map_err(|e| IndexError::Unavailable(format!("{}: {e}", path.display())))
    }

    /// The live shard of a collection, loading it from disk on first use.
    fn slot(&self, collection: &CollectionName) -> Result<Arc<ShardSlot>, IndexError> {
        if let Some(slot) = read(&self.shards).live.get(collection.as_str()) {
            return Ok(Arc::clone(slot));
        }
        let mut shards = self.shards();
        if let Some(slot) = shards.live.get(collection.as_str()) {
            return Ok(Arc::clone(slot));
        }
        if shards.changing.contains(collection.as_str()) {
            return Err(IndexError::MissingCollection(collection.to_string()));
        }
        let generation = self.live_generation(collection)?;
        let dir = self.shard_dir(collection, generation);
        if !dir.join("edge_config.json").is_file() {
            return Err(IndexError::MissingCollection(collection.to_string()));
        }
        let shard = guarded("load", || EdgeShard::load(&dir, None).map_err(op_error))?;
        let slot = ShardSlot::new(generation, OpenShard::new(shard));
        shards.live.insert(collection.to_string(), Arc::clone(&slot));
        // Shards written before the optimizers ran here get their index now.
        request_optimize(&slot, collection.as_str());
        Ok(slot)
    }

    fn rebuild_slot(&self, rebuild: &Rebuild) -> Result<Arc<ShardSlot>, IndexError> {
        read(&self.shards)
            .rebuilds
            .get(rebuild.collection.as_str())
            .filter(|slot| slot.generation == rebuild.generation)
            .cloned()
            .ok_or_else(|| {
                IndexError::Operation(format!("no rebuild {} of {}", rebuild.generation, rebuild.collection))
            })
    }

    /// Marks a collection as changing on disk until the guard goes.
    fn changing<'a>(&'a self, collection: &CollectionName) -> Changing<'a> {
        self.shards().changing.insert(collection.to_string());
        Changing {
            edge: self,
            collection: collection.to_string(),
        }
    }

    fn ensure_collection(&self, collection: &CollectionName, layout: IndexLayout) -> Result<(), IndexError> {
        let _lifecycle = self.lifecycle();
        match self.slot(collection) {
            Ok(_) => return Ok(()),
            Err(IndexError::MissingCollection(_)) => {}
            Err(e) => return Err(e),
        }
        let generation = self.live_generation(collection)?;
        let _changing = self.changing(collection);
        let shard = create_shard(&self.shard_dir(collection, generation), layout)?;
        self.shards()
            .live
            .insert(collection.to_string(), ShardSlot::new(generation, shard));
        Ok(())
    }

    /// Closes the collection's shards, waiting for whoever reads or writes them,
    /// then removes every generation, the pointer last (a crash half way leaves a
    /// collection that is dropped again).
    fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError> {
        let _lifecycle = self.lifecycle();
        let _changing = self.changing(collection);
        let slots = {
            let mut shards = self.shards();
            [
                shards.live.remove(collection.as_str()),
                shards.rebuilds.remove(collection.as_str()),
            ]
        };
        let name = collection.as_str();
        let generation = format!("{name}.g");
        let dirs: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .map_err(op_error)?
            .flatten()
            .filter(|entry| {
                let file_name = entry.file_name().to_string_lossy().to_string();
                file_name == name
                    || file_name
                        .strip_prefix(&generation)
                        .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .map(|entry| entry.path())
            .collect();
        close_then_remove(slots.into_iter().flatten(), &dirs)?;
        for pointer in [format!("{name}.live"), format!("{name}.live.new")] {
            match std::fs::remove_file(self.root.join(pointer)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(op_error(e)),
            }
        }
        Ok(())
    }

    fn begin_rebuild(&self, collection: &CollectionName, layout: IndexLayout) -> Result<Rebuild, IndexError> {
        let _lifecycle = self.lifecycle();
        let generation = self.live_generation(collection)? + 1;
        let abandoned = self.shards().rebuilds.remove(collection.as_str());
        let dir = self.shard_dir(collection, generation);
        close_then_remove(abandoned, std::slice::from_ref(&dir))?;
        let shard = create_shard(&dir, layout)?;
        self.shards()
            .rebuilds
            .insert(collection.to_string(), ShardSlot::new(generation, shard));
        Ok(Rebuild {
            collection: collection.clone(),
            generation,
            layout,
        })
    }

    /// Points the collection at the rebuilt generation and swaps its shard in, in
    /// one step for readers; then closes the old shard and removes its files.
    fn finish_rebuild(&self, rebuild: &Rebuild) -> Result<(), IndexError> {
        let _lifecycle = self.lifecycle();
        let slot = self.rebuild_slot(rebuild)?;
        let old = {
            let mut shards = self.shards();
            self.set_live_generation(&rebuild.collection, rebuild.generation)?;
            shards.rebuilds.remove(rebuild.collection.as_str());
            shards.live.insert(rebuild.collection.to_string(), slot)
        };
        let old_generation = match &old {
            Some(old) => old.generation,
            None => rebuild.generation.saturating_sub(1),
        };
        close_then_remove(old, &[self.shard_dir(&rebuild.collection, old_generation)])
    }
}

/// A collection being created or removed on disk; loading it waits for the end.
struct Changing<'a> {
    edge: &'a Edge,
    collection: String,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.edge.shards().changing.remove(&self.collection);
    }
}

fn create_shard(dir: &Path, layout: IndexLayout) -> Result<OpenShard, IndexError> {
    let mut config = EdgeConfigBuilder::new().sparse_vector(
        BM25_VECTOR,
        EdgeSparseVectorParamsBuilder::new().modifier(Modifier::Idf).build(),
    );
    if let Some(dimension) = layout.dense_dimension {
        config = config.vector(
            DENSE_VECTOR,
            EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build(),
        );
    }
    std::fs::create_dir_all(dir).map_err(op_error)?;
    let shard = OpenShard::new(guarded("create", || {
        EdgeShard::new(dir, config.build()).map_err(op_error)
    })?);
    // Deletes and document filters go through the document id; every search
    // filters out pending points.
    guarded("create", || {
        for (field, schema) in [
            (DOCUMENT_ID_FIELD, PayloadSchemaType::Keyword),
            (PENDING_FIELD, PayloadSchemaType::Bool),
            (ACCESS_FIELD, PayloadSchemaType::Keyword),
        ] {
            let index = CreateIndex {
                field_name: json_path(field)?,
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            };
            shard
                .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(
                    index,
                )))
                .map_err(op_error)?;
        }
        shard.flush();
        Ok(())
    })?;
    Ok(shard)
}

/// Closes slots (waiting for their readers and writer), then removes directories.
/// A shard that could not be flushed keeps its files: it is still open (leaked).
fn close_then_remove(slots: impl IntoIterator<Item = Arc<ShardSlot>>, dirs: &[PathBuf]) -> Result<(), IndexError> {
    let mut closed = Ok(());
    for slot in slots {
        if let Err(e) = slot.close() {
            closed = Err(e);
        }
    }
    closed?;
    dirs.iter().try_for_each(|dir| remove_dir(dir))
}

impl EdgeIndex {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, IndexError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| IndexError::Unavailable(format!("{}: {e}", root.display())))?;
        Ok(Self {
            edge: Arc::new(Edge {
                root,
                shards: RwLock::new(Shards::default()),
                lifecycle: Mutex::new(()),
            }),
        })
    }

    /// Runs `f` on a blocking thread, to completion even if the caller stops
    /// waiting; a panic inside it is an error.
    async fn blocking<T, F>(&self, what: &'static str, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&Edge) -> Result<T, IndexError> + Send + 'static,
    {
        let edge = Arc::clone(&self.edge);
        tokio::task::spawn_blocking(move || guarded(what, || f(&edge)))
            .await
            .map_err(task_failed)?
    }

    /// Runs a read on the live shard on a blocking thread. A shard closed between
    /// looking it up and reading it (a re-index swapped in) is looked up again.
    async fn with_shard<T, F>(&self, collection: &CollectionName, f: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&EdgeShard) -> Result<T, IndexError> + Send + 'static,
    {
        let mut unread = f;
        for _ in 0..3 {
            let slot = self.edge.slot(collection)?;
            let outcome = tokio::task::spawn_blocking(move || {
                let guard = read(&slot.shard);
                match guard.as_ref() {
                    Some(shard) => Ok(guarded("read", || unread(shard))),
                    None => Err(unread),
                }
            })
            .await
            .map_err(task_failed)?;
            match outcome {
                Ok(result) => return result,
                Err(f) => unread = f,
            }
        }
        Err(IndexError::MissingCollection(collection.to_string()))
    }

    /// Writes to the live shard, one writer per shard at a time.
    async fn write(&self, collection: &CollectionName, operations: Vec<UpdateOperation>) -> Result<(), IndexError> {
        let slot = self.edge.slot(collection)?;
        write_to(slot, operations, collection).await
    }
}

/// Applies operations to a slot on a blocking thread; a panic inside Edge is an error.
async fn write_to(
    slot: Arc<ShardSlot>,
    operations: Vec<UpdateOperation>,
    collection: &CollectionName,
) -> Result<(), IndexError> {
    let name = collection.to_string();
    let written = Arc::clone(&slot);
    tokio::task::spawn_blocking(move || guarded("write", || written.write(operations, &name)))
        .await
        .map_err(task_failed)??;
    slot.written();
    request_optimize(&slot, collection.as_str());
    Ok(())
}

fn json_path(path: &str) -> Result<JsonPath, IndexError> {
    path.parse()
        .map_err(|_| IndexError::Operation(format!("invalid payload path {path:?}")))
}

fn document_condition(ids: impl IntoIterator<Item = DocumentId>) -> Result<Condition, IndexError> {
    let any = AnyVariants::Strings(ids.into_iter().map(|id| id.to_string()).collect());
    Ok(Condition::Field(FieldCondition::new_match(
        json_path(DOCUMENT_ID_FIELD)?,
        Match::Any(MatchAny { any }),
    )))
}

/// Our filter as Qdrant conditions, all of which must hold, never a pending
/// point, and only chunks the readers may see.
fn to_qdrant_filter(filter: &Filter, readers: &Readers) -> Result<QdrantFilter, IndexError> {
    let mut must = Vec::new();
    if let Readers::Principals(principals) = readers {
        let open = Condition::IsEmpty(IsEmptyCondition::from(json_path(ACCESS_FIELD)?));
        let mut either = vec![open];
        if !principals.is_empty() {
            either.push(Condition::Field(FieldCondition::new_match(
                json_path(ACCESS_FIELD)?,
                Match::Any(MatchAny {
                    any: AnyVariants::Strings(principals.iter().cloned().collect()),
                }),
            )));
        }
        must.push(Condition::Filter(QdrantFilter {
            should: Some(either),
            ..QdrantFilter::new()
        }));
    }
    if let Some(ids) = &filter.document_ids {
        must.push(document_condition(ids.iter().copied())?);
    }
    for (key, value) in filter.metadata.iter().flatten() {
        // Keys were checked to be plain identifiers, so the path is unambiguous.
        let value = match value {
            MetadataValue::Bool(b) => ValueVariants::Bool(*b),
            MetadataValue::Integer(i) => ValueVariants::Integer(*i),
            MetadataValue::String(s) => ValueVariants::String(s.clone()),
        };
        must.push(Condition::Field(FieldCondition::new_match(
            json_path(&format!("metadata.{key}"))?,
            Match::Value(MatchValue { value }),
        )));
    }
    let pending = Condition::Field(FieldCondition::new_match(
        json_path(PENDING_FIELD)?,
        Match::Value(MatchValue {
            value: ValueVariants::Bool(true),
        }),
    ));
    Ok(QdrantFilter {
        must: (!must.is_empty()).then_some(must),
        must_not: Some(vec![pending]),
        ..QdrantFilter::new()
    })
}

fn to_point(point: ChunkPoint) -> Result<PointStruct, IndexError> {
    let mut vectors = vec![(
        BM25_VECTOR.to_string(),
        Vector::new_sparse(point.bm25.indices, point.bm25.values).map_err(op_error)?,
    )];
    if let Some(dense) = point.dense {
        vectors.push((DENSE_VECTOR.to_string(), Vector::new_dense(dense)));
    }
    let payload = serde_json::to_value(&point.payload).map_err(op_error)?;
    if !payload.is_object() {
        return Err(IndexError::Operation("chunk payload is not a JSON object".into()));
    }
    Ok(PointStruct::new(
        PointId::Uuid(point.id.0),
        Vectors::new_named(vectors),
        payload,
    ))
}

fn upsert_operation(points: Vec<ChunkPoint>) -> Result<UpdateOperation, IndexError> {
    let points = points.into_iter().map(to_point).collect::<Result<Vec<_>, _>>()?;
    Ok(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
        PointInsertOperations::PointsList(points.into_iter().map(Into::into).collect()),
    )))
}

fn delete_document_operation(document: DocumentId) -> Result<UpdateOperation, IndexError> {
    let filter = QdrantFilter::new_must(document_condition([document])?);
    Ok(UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(
        filter,
    )))
}

fn from_scored(point: qdrant_edge::ScoredPoint, query: Option<&[f32]>) -> Result<ScoredChunk, IndexError> {
    let PointId::Uuid(id) = point.id else {
        return Err(IndexError::Operation(format!("unexpected point id {:?}", point.id)));
    };
    let payload = point
        .payload
        .ok_or_else(|| IndexError::Operation(format!("point {id} has no payload")))?;
    let payload: ChunkPayload = serde_json::from_value(serde_json::Value::Object(payload.0)).map_err(op_error)?;
    let stored = match &point.vector {
        Some(VectorStructInternal::Named(vectors)) => match vectors.get(DENSE_VECTOR) {
            Some(VectorInternal::Dense(v)) => Some(v.as_slice()),
            _ => None,
        },
        _ => None,
    };
    Ok(ScoredChunk::found(id, point.score, payload, query, stored))
}

#[async_trait]
impl VectorIndex for EdgeIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        let root = self.edge.root.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(&root).map(|_| ()))
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?
            .map_err(|e| IndexError::Unavailable(format!("{}: {e}", self.edge.root.display())))
    }

    async fn ensure_collection(&self, collection: &CollectionName, layout: IndexLayout) -> Result<(), IndexError> {
        if self.edge.slot(collection).is_ok() {
            return Ok(());
        }
        let collection = collection.clone();
        self.blocking("create", move |edge| edge.ensure_collection(&collection, layout))
            .await
    }

    async fn drop_collection(&self, collection: &CollectionName) -> Result<(), IndexError> {
        let collection = collection.clone();
        self.blocking("drop", move |edge| edge.drop_collection(&collection))
            .await
    }

    async fn upsert(&self, collection: &CollectionName, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        self.write(collection, vec![upsert_operation(points)?]).await
    }

    async fn publish_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        let operation = UpdateOperation::PayloadOperation(PayloadOps::DeletePayload(DeletePayloadOp {
            keys: vec![json_path(PENDING_FIELD)?],
            points: None,
            filter: Some(QdrantFilter::new_must(document_condition([document])?)),
        }));
        self.write(collection, vec![operation]).await
    }

    async fn set_document_payload(
        &self,
        collection: &CollectionName,
        document: DocumentId,
        access: &[String],
        metadata: &Metadata,
    ) -> Result<(), IndexError> {
        let payload = serde_json::json!({ ACCESS_FIELD: access, "metadata": metadata });
        let payload: Payload = serde_json::from_value(payload).map_err(op_error)?;
        let operation = || -> Result<UpdateOperation, IndexError> {
            Ok(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(
                SetPayloadOp {
                    payload: payload.clone(),
                    points: None,
                    filter: Some(QdrantFilter::new_must(document_condition([document])?)),
                    key: None,
                },
            )))
        };
        // A rebuild in progress copies from the catalog, which already holds the
        // change; its points written before are changed here too.
        let rebuild = read(&self.edge.shards).rebuilds.get(collection.as_str()).cloned();
        if let Some(slot) = rebuild {
            write_to(slot, vec![operation()?], collection).await?;
        }
        self.write(collection, vec![operation()?]).await
    }

    async fn delete_document(&self, collection: &CollectionName, document: DocumentId) -> Result<(), IndexError> {
        let rebuild = read(&self.edge.shards).rebuilds.get(collection.as_str()).cloned();
        if let Some(slot) = rebuild {
            write_to(slot, vec![delete_document_operation(document)?], collection).await?;
        }
        match self.write(collection, vec![delete_document_operation(document)?]).await {
            Err(IndexError::MissingCollection(_)) => Ok(()),
            other => other,
        }
    }

    async fn search(&self, collection: &CollectionName, query: HybridQuery) -> Result<Vec<ScoredChunk>, IndexError> {
        let filter = Some(to_qdrant_filter(&query.filter, &query.readers)?);
        let query_vector = query.dense.clone();
        let weights = query.fusion.weights(query.dense.is_some(), !query.bm25.is_empty());
        let mut prefetches = Vec::new();
        if let Some(dense) = query.dense {
            prefetches.push(Prefetch {
                prefetches: Vec::new(),
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: VectorInternal::Dense(dense),
                    using: Some(DENSE_VECTOR.into()),
                }))),
                limit: query.prefetch,
                params: None,
                filter: filter.clone(),
                score_threshold: Some(OrderedFloat(query.min_dense_score)),
            });
        }
        if !query.bm25.is_empty() {
            let sparse = Vector::new_sparse(query.bm25.indices, query.bm25.values).map_err(op_error)?;
            prefetches.push(Prefetch {
                prefetches: Vec::new(),
                query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: sparse.0,
                    using: Some(BM25_VECTOR.into()),
                }))),
                limit: query.prefetch,
                params: None,
                filter: filter.clone(),
                score_threshold: None,
            });
        }
        if prefetches.is_empty() {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches,
            query: Some(ScoringQuery::Fusion(Fusion::Rrf {
                k: query.fusion.rrf_k as usize,
                weights: weights.map(|w| w.into_iter().map(OrderedFloat).collect()),
            })),
            filter,
            score_threshold: None,
            limit: query.limit,
            offset: 0,
            params: None,
            // The dense vectors of the few returned points, to measure their similarity.
            with_vector: match query_vector {
                Some(_) => WithVector::Selector(vec![DENSE_VECTOR.into()]),
                None => WithVector::Bool(false),
            },
            with_payload: WithPayloadInterface::Bool(true),
        };
        self.with_shard(collection, move |shard| {
            shard
                .query(request)
                .map_err(op_error)?
                .into_iter()
                .map(|point| from_scored(point, query_vector.as_deref()))
                .collect()
        })
        .await
    }

    async fn count_document(&self, collection: &CollectionName, document: DocumentId) -> Result<usize, IndexError> {
        let filter = QdrantFilter::new_must(document_condition([document])?);
        self.with_shard(collection, move |shard| {
            shard
                .count(CountRequest {
                    filter: Some(filter),
                    exact: true,
                })
                .map_err(op_error)
        })
        .await
    }

    async fn count_points(&self, collection: &CollectionName) -> Result<usize, IndexError> {
        self.with_shard(collection, |shard| {
            shard
                .count(CountRequest {
                    filter: None,
                    exact: true,
                })
                .map_err(op_error)
        })
        .await
    }

    async fn begin_rebuild(&self, collection: &CollectionName, layout: IndexLayout) -> Result<Rebuild, IndexError> {
        let collection = collection.clone();
        self.blocking("rebuild", move |edge| edge.begin_rebuild(&collection, layout))
            .await
    }

    async fn upsert_rebuild(&self, rebuild: &Rebuild, points: Vec<ChunkPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let slot = self.edge.rebuild_slot(rebuild)?;
        write_to(slot, vec![upsert_operation(points)?], &rebuild.collection).await
    }

    async fn finish_rebuild(&self, rebuild: &Rebuild) -> Result<(), IndexError> {
        let rebuild = rebuild.clone();
        self.blocking("swap", move |edge| edge.finish_rebuild(&rebuild)).await
    }
}

fn remove_dir(dir: &Path) -> Result<(), IndexError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(op_error(format!("{}: {e}", dir.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChunkId, Metadata};
    use crate::embed::SparseVector;

    #[test]
    fn the_optimizers_wait_for_the_writes_to_go_quiet_but_not_forever() {
        let start = tokio::time::Instant::now();
        let second = Duration::from_secs(1);
        // Loaded, never written: now.
        assert_eq!(optimize_wait(None, start, start), None);
        // Just written: the whole quiet period.
        assert_eq!(optimize_wait(Some(start), start, start), Some(WRITES_QUIET_FOR));
        // Written a second ago: the rest of it.
        assert_eq!(
            optimize_wait(Some(start), start, start + second),
            Some(WRITES_QUIET_FOR - second)
        );
        // Quiet long enough: now.
        assert_eq!(optimize_wait(Some(start), start, start + WRITES_QUIET_FOR), None);
        // Written without a pause: the deadline wins when it comes first...
        let late = start + OPTIMIZE_WITHIN - second;
        assert_eq!(optimize_wait(Some(late), start, late), Some(second));
        // ...and once it has passed, now, however recent the last write.
        let past = start + OPTIMIZE_WITHIN;
        assert_eq!(optimize_wait(Some(past), start, past), None);
    }

    /// Edge indexes a segment past 10,000 KB: 700 vectors of 4,096 floats.
    const DIMENSION: usize = 4096;
    const POINTS: u32 = 700;

    fn vector(seed: u32) -> Vec<f32> {
        (0..DIMENSION)
            .map(|j| ((seed as f32 + 1.0) * 0.37 + j as f32 * 0.0131).sin())
            .collect()
    }

    fn point(document: DocumentId, index: u32) -> ChunkPoint {
        ChunkPoint {
            id: ChunkId::for_chunk(document, index),
            dense: Some(vector(index)),
            bm25: SparseVector {
                indices: vec![index],
                values: vec![1.0],
            },
            payload: ChunkPayload {
                collection: "big".into(),
                document_id: document,
                chunk_index: index,
                page_start: 1,
                page_end: 1,
                filename: "big.txt".into(),
                text: format!("chunk {index}"),
                page_breaks: Vec::new(),
                metadata: Metadata::default(),
                access: Vec::new(),
                pending: false,
                layout: None,
            },
        }
    }

    fn nearest_to(seed: u32) -> HybridQuery {
        HybridQuery {
            dense: Some(vector(seed)),
            bm25: SparseVector::default(),
            filter: Filter::default(),
            readers: Readers::All,
            limit: 3,
            prefetch: 16,
            fusion: Default::default(),
            min_dense_score: 0.25,
        }
    }

    /// Waits until no optimizer task runs for the collection; its shard's info.
    async fn settled(index: &EdgeIndex, collection: &CollectionName) -> qdrant_edge::ShardInfo {
        let slot = index.edge.slot(collection).unwrap();
        for _ in 0..1200 {
            if !slot.optimizing.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !slot.optimizing.load(Ordering::Acquire),
            "the optimizer still runs after 120 s"
        );
        read(&slot.shard).as_ref().unwrap().info()
    }

    #[test]
    fn an_optimizer_task_dropped_with_its_runtime_lets_the_next_write_start_another() {
        let dir = tempfile::tempdir().unwrap();
        let collection = CollectionName::parse("dropped").unwrap();
        let layout = IndexLayout {
            dense_dimension: Some(DIMENSION),
        };
        let index = EdgeIndex::open(dir.path()).unwrap();
        let setup = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        setup.block_on(index.ensure_collection(&collection, layout)).unwrap();
        let slot = index.edge.slot(&collection).unwrap();
        drop(setup);

        // A runtime that never runs the task it is handed: it is dropped first.
        let short_lived = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        short_lived.block_on(async { request_optimize(&slot, collection.as_str()) });
        assert!(slot.optimizing.load(Ordering::Acquire), "a task was started");
        drop(short_lived);
        assert!(!slot.optimizing.load(Ordering::Acquire), "the dropped task let go");

        // The next write's request starts a task that runs.
        let next = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        next.block_on(async {
            request_optimize(&slot, collection.as_str());
            assert!(slot.optimizing.load(Ordering::Acquire));
            settled(&index, &collection).await;
        });
        assert!(!slot.wants_optimizing());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_shard_past_the_indexing_threshold_gets_its_hnsw_index_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let collection = CollectionName::parse("big").unwrap();
        let document = DocumentId::new();
        let layout = IndexLayout {
            dense_dimension: Some(DIMENSION),
        };
        let index = EdgeIndex::open(dir.path()).unwrap();
        index.ensure_collection(&collection, layout).await.unwrap();
        // A few points: below the threshold, no HNSW index; Edge counts the
        // sparse (BM25) vectors as indexed, so 10 means only them.
        index
            .upsert(&collection, (0..10).map(|i| point(document, i)).collect())
            .await
            .unwrap();
        assert_eq!(settled(&index, &collection).await.indexed_vectors_count, 10);

        for batch in (10..POINTS).collect::<Vec<_>>().chunks(100) {
            index
                .upsert(&collection, batch.iter().map(|&i| point(document, i)).collect())
                .await
                .unwrap();
        }
        let info = settled(&index, &collection).await;
        assert_eq!(info.points_count, POINTS as usize);
        // The dense vectors in the HNSW index, and the sparse ones.
        assert_eq!(info.indexed_vectors_count, 2 * POINTS as usize, "{info:?}");
        for seed in [0, 345, POINTS - 1] {
            let found = index.search(&collection, nearest_to(seed)).await.unwrap();
            assert_eq!(found[0].id, ChunkId::for_chunk(document, seed), "nearest to {seed}");
        }

        // Loaded again from disk: the index is there, searched the same.
        drop(index);
        let index = EdgeIndex::open(dir.path()).unwrap();
        let info = settled(&index, &collection).await;
        assert_eq!(info.points_count, POINTS as usize);
        assert_eq!(info.indexed_vectors_count, 2 * POINTS as usize, "{info:?}");
        let found = index.search(&collection, nearest_to(345)).await.unwrap();
        assert_eq!(found[0].id, ChunkId::for_chunk(document, 345));
    }
}
