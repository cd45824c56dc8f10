//! Transactions the database gave up on to break a deadlock (Postgres picks a
//! victim when a delete's cascade meets a job claim in the other lock order) are
//! run again: the transaction was rolled back whole, so running it anew is safe.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Catalog, CatalogError, ClaimedJob, DocumentPage, DocumentQuery, InsertOutcome, JobOutcome, NewCollection};
use chrono::{DateTime, Utc};

use crate::domain::{
    ApiKey, AttemptOutcome, AuditEntry, AuditQuery, Chunk, Collection, CollectionName, Conversation, ConversationId,
    Delivery, Document, DocumentId, Job, JobId, JobProgress, KeyId, Metadata, NewApiKey, NewDocument, NewTurn, Tenant,
    TenantName, TenantUsage, Turn, Webhook, WebhookId,
};

/// Attempts in all, the first included.
const ATTEMPTS: u32 = 5;

/// A catalog whose writes are retried when they lose a lock conflict.
pub struct Retrying(pub Arc<dyn Catalog>);

/// Runs `attempt` until it does not end in a conflict, a few times at most, with
/// a short random pause between (so that the two sides do not meet again).
async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, CatalogError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CatalogError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(CatalogError::Conflict(detail)) if tries < ATTEMPTS => {
                tracing::debug!(what, tries, %detail, "transaction lost a lock conflict; running it again");
                tokio::time::sleep(Duration::from_millis(fastrand::u64(5..50) * u64::from(tries))).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Catalog for Retrying {
    async fn ping(&self) -> Result<(), CatalogError> {
        self.0.ping().await
    }

    async fn close(&self) {
        self.0.close().await
    }

    async fn create_collection(&self, new: &NewCollection) -> Result<Collection, CatalogError> {
        retrying("create collection", || self.0.create_collection(new)).await
    }

    async fn get_collection(&self, name: &CollectionName) -> Result<Option<Collection>, CatalogError> {
        self.0.get_collection(name).await
    }

    async fn list_collections(&self, tenant: &TenantName) -> Result<Vec<Collection>, CatalogError> {
        self.0.list_collections(tenant).await
    }

    async fn delete_collection(&self, name: &CollectionName) -> Result<bool, CatalogError> {
        retrying("delete collection", || self.0.delete_collection(name)).await
    }

    async fn insert_document(&self, new: &NewDocument) -> Result<InsertOutcome, CatalogError> {
        retrying("insert document", || self.0.insert_document(new)).await
    }

    async fn get_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
    ) -> Result<Option<Document>, CatalogError> {
        self.0.get_document(collection, id).await
    }

    async fn list_documents(
        &self,
        collection: &CollectionName,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, CatalogError> {
        self.0.list_documents(collection, query).await
    }

    async fn document_ids(&self, collection: &CollectionName) -> Result<Vec<DocumentId>, CatalogError> {
        self.0.document_ids(collection).await
    }

    async fn has_document(&self, id: DocumentId) -> Result<bool, CatalogError> {
        self.0.has_document(id).await
    }

    async fn delete_document(&self, collection: &CollectionName, id: DocumentId) -> Result<bool, CatalogError> {
        retrying("delete document", || self.0.delete_document(collection, id)).await
    }

    async fn update_document(
        &self,
        collection: &CollectionName,
        id: DocumentId,
        access: Option<&[String]>,
        metadata: Option<&Metadata>,
    ) -> Result<Option<Document>, CatalogError> {
        retrying("update document", || {
            self.0.update_document(collection, id, access, metadata)
        })
        .await
    }

    async fn replace_chunks(&self, document: DocumentId, chunks: &[Chunk]) -> Result<(), CatalogError> {
        retrying("replace chunks", || self.0.replace_chunks(document, chunks)).await
    }

    async fn chunks_of(&self, document: DocumentId) -> Result<Vec<Chunk>, CatalogError> {
        self.0.chunks_of(document).await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        self.0.get_job(id).await
    }

    async fn enqueue_reindex(&self, collection: &CollectionName) -> Result<Job, CatalogError> {
        retrying("enqueue re-index", || self.0.enqueue_reindex(collection)).await
    }

    async fn active_reindex(&self, collection: &CollectionName) -> Result<Option<Job>, CatalogError> {
        self.0.active_reindex(collection).await
    }

    async fn claim_next_job(&self) -> Result<Option<ClaimedJob>, CatalogError> {
        retrying("claim job", || self.0.claim_next_job()).await
    }

    async fn update_job_progress(&self, id: JobId, progress: JobProgress) -> Result<(), CatalogError> {
        retrying("job progress", || self.0.update_job_progress(id, progress)).await
    }

    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<bool, CatalogError> {
        retrying("finish job", || self.0.finish_job(id, outcome)).await
    }

    async fn requeue_interrupted_jobs(&self) -> Result<u64, CatalogError> {
        retrying("requeue jobs", || self.0.requeue_interrupted_jobs()).await
    }

    async fn retry_job(&self, id: JobId) -> Result<Option<Job>, CatalogError> {
        retrying("retry job", || self.0.retry_job(id)).await
    }

    async fn queued_jobs(&self) -> Result<u64, CatalogError> {
        self.0.queued_jobs().await
    }

    async fn tenant_usage(&self, tenant: &TenantName) -> Result<TenantUsage, CatalogError> {
        self.0.tenant_usage(tenant).await
    }

    async fn create_key(&self, new: &NewApiKey) -> Result<ApiKey, CatalogError> {
        retrying("create key", || self.0.create_key(new)).await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, CatalogError> {
        self.0.key_by_hash(hash).await
    }

    async fn list_keys(&self, tenant: Option<&TenantName>) -> Result<Vec<ApiKey>, CatalogError> {
        self.0.list_keys(tenant).await
    }

    async fn revoke_key(
        &self,
        tenant: Option<&TenantName>,
        id: KeyId,
        at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        retrying("revoke key", || self.0.revoke_key(tenant, id, at)).await
    }

    async fn touch_key(&self, id: KeyId, at: DateTime<Utc>) -> Result<(), CatalogError> {
        retrying("touch key", || self.0.touch_key(id, at)).await
    }

    async fn create_tenant(&self, name: &TenantName) -> Result<Tenant, CatalogError> {
        retrying("create tenant", || self.0.create_tenant(name)).await
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Option<Tenant>, CatalogError> {
        self.0.get_tenant(name).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, CatalogError> {
        self.0.list_tenants().await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), CatalogError> {
        retrying("append audit", || self.0.append_audit(entries)).await
    }

    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, CatalogError> {
        self.0.audit_entries(query).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, CatalogError> {
        retrying("prune audit", || self.0.prune_audit(before)).await
    }

    async fn create_conversation(&self, conversation: &Conversation) -> Result<(), CatalogError> {
        retrying("create conversation", || self.0.create_conversation(conversation)).await
    }

    async fn get_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, CatalogError> {
        self.0.get_conversation(id).await
    }

    async fn conversation_turns(&self, id: ConversationId) -> Result<Vec<Turn>, CatalogError> {
        self.0.conversation_turns(id).await
    }

    async fn append_turn(&self, id: ConversationId, turn: &NewTurn) -> Result<Option<Turn>, CatalogError> {
        retrying("append turn", || self.0.append_turn(id, turn)).await
    }

    async fn delete_conversation(&self, id: ConversationId) -> Result<bool, CatalogError> {
        retrying("delete conversation", || self.0.delete_conversation(id)).await
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<(), CatalogError> {
        retrying("create webhook", || self.0.create_webhook(webhook)).await
    }

    async fn list_webhooks(&self, tenant: &TenantName) -> Result<Vec<Webhook>, CatalogError> {
        self.0.list_webhooks(tenant).await
    }

    async fn get_webhook(&self, id: WebhookId) -> Result<Option<Webhook>, CatalogError> {
        self.0.get_webhook(id).await
    }

    async fn delete_webhook(&self, tenant: &TenantName, id: WebhookId) -> Result<bool, CatalogError> {
        retrying("delete webhook", || self.0.delete_webhook(tenant, id)).await
    }

    async fn webhook_deliveries(&self, id: WebhookId, limit: u32) -> Result<Vec<Delivery>, CatalogError> {
        self.0.webhook_deliveries(id, limit).await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(Delivery, Webhook)>, CatalogError> {
        retrying("claim deliveries", || self.0.claim_deliveries(now, lease_until, limit)).await
    }

    async fn record_attempt(&self, id: uuid::Uuid, outcome: &AttemptOutcome) -> Result<(), CatalogError> {
        retrying("record delivery attempt", || self.0.record_attempt(id, outcome)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_conflict_is_run_again_and_other_errors_are_not() {
        let calls = AtomicU32::new(0);
        let result = retrying("test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(CatalogError::Conflict("deadlock detected".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // An error every time: how often it was tried, and what came back.
        async fn failing(error: fn() -> CatalogError) -> (u32, CatalogError) {
            let calls = AtomicU32::new(0);
            let result: Result<(), _> = retrying("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(error())
            })
            .await;
            (calls.load(Ordering::SeqCst), result.unwrap_err())
        }
        let (calls, error) = failing(|| CatalogError::Unavailable("down".into())).await;
        assert!(matches!(error, CatalogError::Unavailable(_)));
        assert_eq!(calls, 1);
        let (calls, error) = failing(|| CatalogError::Conflict("again".into())).await;
        assert!(matches!(error, CatalogError::Conflict(_)));
        assert_eq!(calls, ATTEMPTS);
    }
}
