//! Choosing and opening the catalog from `DATABASE_URL`: SQLite in the data dir
//! by default, Postgres for a `postgres://` URL (waited for at start, for a
//! bounded time, so that a server started with its database comes up).

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::retrying::Retrying;
use super::{Catalog, CatalogError, SqlCatalog};
use crate::config::DatabaseSettings;

/// Opens the catalog and brings its schema up to date (what `docqa migrate` does
/// alone).
pub async fn connect(settings: &DatabaseSettings) -> Result<Arc<dyn Catalog>, CatalogError> {
    if !settings.is_postgres() {
        let catalog = SqlCatalog::open_sqlite(settings.url.expose_secret(), settings.max_connections).await?;
        return Ok(Arc::new(Retrying(Arc::new(catalog))));
    }
    let catalog = crate::backoff::retry(
        &settings.describe(),
        settings.startup_timeout,
        |e: &CatalogError| matches!(e, CatalogError::Unavailable(_)) && !is_refusal(e),
        || SqlCatalog::connect_postgres(settings.url.expose_secret(), settings.max_connections),
    )
    .await?;
    catalog.migrate().await?;
    Ok(Arc::new(Retrying(Arc::new(catalog))))
}

/// Errors no wait cures: wrong password, no such database or role.
fn is_refusal(error: &CatalogError) -> bool {
    let text = error.to_string();
    [
        "password authentication failed",
        "does not exist",
        "no pg_hba.conf entry",
    ]
    .iter()
    .any(|refusal| text.contains(refusal))
}
