//! What a re-index copies: every ready document of the collection, read from the
//! catalog page by page.

use crate::catalog::{Catalog, CatalogError, DocumentQuery};
use crate::domain::{CollectionName, Document, DocumentStatus};

const PAGE: u32 = 500;

pub(crate) async fn ready_documents(
    catalog: &dyn Catalog,
    collection: &CollectionName,
) -> Result<Vec<Document>, CatalogError> {
    let mut documents = Vec::new();
    let mut after = None;
    loop {
        let page = catalog
            .list_documents(
                collection,
                &DocumentQuery {
                    status: Some(DocumentStatus::Ready),
                    limit: PAGE,
                    after,
                },
            )
            .await?;
        documents.extend(page.documents);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(documents),
        }
    }
}
