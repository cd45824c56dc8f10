//! The `VectorIndex` contract, on Qdrant Edge and (with `QDRANT_URL`) on a
//! Qdrant server: pending points stay invisible until published, and a rebuild
//! serves the old generation until it is swapped in.

use std::collections::HashMap;
use std::sync::Arc;

use docqa::Config;
use docqa::domain::{ChunkId, CollectionName, DocumentId, Filter, Metadata, Readers};
use docqa::embed::Bm25Encoder;
use docqa::index::{ChunkPayload, ChunkPoint, HybridQuery, IndexLayout, VectorIndex};

use crate::backends::Backend;

struct TestIndex {
    index: Arc<dyn VectorIndex>,
    _dir: tempfile::TempDir,
    _backend: crate::backends::Provisioned,
}

async fn open(backend: Backend, test: &str) -> Option<TestIndex> {
    let provisioned = backend.provision(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = provisioned.vars.clone();
    vars.insert("DOCQA_DATA_DIR".into(), dir.path().display().to_string());
    let config = Config::from_vars(&vars).expect("config");
    let index = docqa::index::open(&config.index).await.expect("index opens");
    Some(TestIndex {
        index,
        _dir: dir,
        _backend: provisioned,
    })
}

const LAYOUT: IndexLayout = IndexLayout {
    dense_dimension: Some(4),
};

fn points(bm25: &Bm25Encoder, document: DocumentId, texts: &[&str], dense: [f32; 4], pending: bool) -> Vec<ChunkPoint> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| ChunkPoint {
            id: ChunkId::for_chunk(document, i as u32),
            dense: Some(dense.to_vec()),
            bm25: bm25.passage(text),
            payload: ChunkPayload {
                collection: "docs".into(),
                document_id: document,
                chunk_index: i as u32,
                page_start: 1,
                page_end: 1,
                filename: format!("{document}.txt"),
                text: text.to_string(),
                page_breaks: Vec::new(),
                metadata: Metadata::default(),
                access: Vec::new(),
                pending,
                layout: None,
            },
        })
        .collect()
}

fn query(bm25: &Bm25Encoder, text: &str, dense: [f32; 4]) -> HybridQuery {
    HybridQuery {
        dense: Some(dense.to_vec()),
        bm25: bm25.query(text),
        filter: Filter::default(),
        readers: Readers::All,
        limit: 10,
        prefetch: 32,
        fusion: Default::default(),
        min_dense_score: 0.25,
    }
}

fn documents_of(found: &[docqa::index::ScoredChunk]) -> Vec<DocumentId> {
    let mut ids: Vec<DocumentId> = found.iter().map(|c| c.payload.document_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn pending_points_are_found_only_once_published(backend: Backend) {
    let Some(t) = open(backend, "pending_points_are_found_only_once_published").await else {
        return;
    };
    let bm25 = Bm25Encoder::new();
    let collection = CollectionName::parse("docs").unwrap();
    t.index.ensure_collection(&collection, LAYOUT).await.unwrap();
    let ready = DocumentId::new();
    let loading = DocumentId::new();
    let texts = [
        "the lighthouse keeper logs the tides",
        "tides rise twice a day at the lighthouse",
    ];
    t.index
        .upsert(&collection, points(&bm25, ready, &texts, [1.0, 0.0, 0.0, 0.0], false))
        .await
        .unwrap();
    t.index
        .upsert(&collection, points(&bm25, loading, &texts, [1.0, 0.1, 0.0, 0.0], true))
        .await
        .unwrap();

    let found = t
        .index
        .search(&collection, query(&bm25, "lighthouse tides", [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    assert_eq!(documents_of(&found), vec![ready], "a pending document is not found");
    assert_eq!(
        t.index.count_document(&collection, loading).await.unwrap(),
        2,
        "but its points are there"
    );

    t.index.publish_document(&collection, loading).await.unwrap();
    let found = t
        .index
        .search(&collection, query(&bm25, "lighthouse tides", [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    let mut both = vec![ready, loading];
    both.sort();
    assert_eq!(documents_of(&found), both);
    assert!(found.iter().all(|c| !c.payload.pending));
    // The cosine of the query and each stored vector comes back with the hit.
    for hit in &found {
        let expected = if hit.payload.document_id == ready {
            1.0
        } else {
            1.0 / 1.01f32.sqrt()
        };
        let got = hit.dense_similarity.expect("dense similarity");
        assert!((got - expected).abs() < 1e-3, "{got} vs {expected}");
    }

    t.index.delete_document(&collection, loading).await.unwrap();
    assert_eq!(t.index.count_document(&collection, loading).await.unwrap(), 0);
    t.index.drop_collection(&collection).await.unwrap();
    assert!(
        t.index.count_document(&collection, ready).await.is_err(),
        "a dropped collection is gone"
    );
}

async fn a_rebuild_serves_the_old_generation_until_it_is_swapped_in(backend: Backend) {
    let Some(t) = open(backend, "a_rebuild_serves_the_old_generation_until_it_is_swapped_in").await else {
        return;
    };
    let bm25 = Bm25Encoder::new();
    let collection = CollectionName::parse("docs").unwrap();
    t.index
        .ensure_collection(
            &collection,
            IndexLayout {
                dense_dimension: Some(4),
            },
        )
        .await
        .unwrap();
    let old = DocumentId::new();
    t.index
        .upsert(
            &collection,
            points(
                &bm25,
                old,
                &["orchard apples ripen in autumn"],
                [0.0, 1.0, 0.0, 0.0],
                false,
            ),
        )
        .await
        .unwrap();

    let rebuild = t.index.begin_rebuild(&collection, LAYOUT).await.unwrap();
    let kept = DocumentId::new();
    let deleted = DocumentId::new();
    t.index
        .upsert_rebuild(
            &rebuild,
            points(
                &bm25,
                kept,
                &["orchard apples ripen in autumn"],
                [0.0, 1.0, 0.0, 0.0],
                false,
            ),
        )
        .await
        .unwrap();
    t.index
        .upsert_rebuild(
            &rebuild,
            points(
                &bm25,
                deleted,
                &["orchard pears ripen in autumn"],
                [0.0, 1.0, 0.1, 0.0],
                false,
            ),
        )
        .await
        .unwrap();
    // A delete while rebuilding reaches the rebuild too.
    t.index.delete_document(&collection, deleted).await.unwrap();

    let search = || {
        t.index
            .search(&collection, query(&bm25, "orchard autumn", [0.0, 1.0, 0.0, 0.0]))
    };
    assert_eq!(
        documents_of(&search().await.unwrap()),
        vec![old],
        "the old generation serves"
    );
    t.index.finish_rebuild(&rebuild).await.unwrap();
    let found = search().await.unwrap();
    assert_eq!(documents_of(&found), vec![kept], "the new generation serves");
    assert!(
        found[0].dense_similarity.is_some_and(|s| s > 0.99),
        "{:?}",
        found[0].dense_similarity
    );
    // Writes go to the new generation too, and a second rebuild works the same.
    let later = DocumentId::new();
    t.index
        .upsert(
            &collection,
            points(
                &bm25,
                later,
                &["autumn orchard harvest festival"],
                [0.0, 1.0, 0.0, 0.0],
                false,
            ),
        )
        .await
        .unwrap();
    let mut expected = vec![kept, later];
    expected.sort();
    assert_eq!(documents_of(&search().await.unwrap()), expected);
    let second = t.index.begin_rebuild(&collection, LAYOUT).await.unwrap();
    assert!(second.generation > rebuild.generation);
    t.index.finish_rebuild(&second).await.unwrap();
    assert!(
        search().await.unwrap().is_empty(),
        "an empty rebuild swapped in leaves nothing"
    );
    t.index.drop_collection(&collection).await.unwrap();
}

async fn the_bm25_weight_tips_a_tie_between_the_sides(backend: Backend) {
    let Some(t) = open(backend, "the_bm25_weight_tips_a_tie_between_the_sides").await else {
        return;
    };
    let bm25 = Bm25Encoder::new();
    let collection = CollectionName::parse("docs").unwrap();
    t.index.ensure_collection(&collection, LAYOUT).await.unwrap();
    // First on the dense side and second on BM25, or the other way round: under
    // equal weights the two fuse to the same score. Qdrant's weighted RRF scales
    // the rank, 1 / (rank / weight + k - 1), so a weight tips it at a small k.
    let dense_first = DocumentId::new();
    let bm25_first = DocumentId::new();
    t.index
        .upsert(
            &collection,
            points(
                &bm25,
                dense_first,
                &["the harbour office opens early"],
                [1.0, 0.0, 0.0, 0.0],
                false,
            ),
        )
        .await
        .unwrap();
    t.index
        .upsert(
            &collection,
            points(
                &bm25,
                bm25_first,
                &["harbour pilot boats guide the harbour pilot ships"],
                [0.8, 0.6, 0.0, 0.0],
                false,
            ),
        )
        .await
        .unwrap();

    let first_with = |bm25_weight: f32| {
        let mut q = query(&bm25, "harbour pilot", [1.0, 0.0, 0.0, 0.0]);
        q.fusion = docqa::index::Fusion { rrf_k: 1, bm25_weight };
        let index = t.index.clone();
        let collection = collection.clone();
        async move {
            let found = index.search(&collection, q).await.unwrap();
            assert_eq!(found.len(), 2, "{found:?}");
            found[0].payload.document_id
        }
    };
    assert_eq!(first_with(2.0).await, bm25_first);
    assert_eq!(first_with(0.5).await, dense_first);
    t.index.drop_collection(&collection).await.unwrap();
}

/// Index tests run on each index; the catalog plays no part.
macro_rules! on_every_index {
    ($($test:ident),* $(,)?) => {
        mod edge {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::SqliteEdge).await } )*
        }
        mod qdrant {
            $( #[tokio::test(flavor = "multi_thread")] async fn $test() { super::$test(crate::backends::Backend::SqliteQdrant).await } )*
        }
    };
}

/// Permissions are a condition of the index's filter: a search gets `limit`
/// chunks it may see even when better-ranked ones are forbidden, never one of
/// those; a change of `access` in place takes effect for the next search.
async fn access_is_filtered_inside_the_index(backend: Backend) {
    let Some(t) = open(backend, "access_is_filtered_inside_the_index").await else {
        return;
    };
    let bm25 = Bm25Encoder::new();
    let collection = CollectionName::parse("docs").unwrap();
    t.index.ensure_collection(&collection, LAYOUT).await.unwrap();
    let text = ["the merger closes in march"; 4];
    // Legal's documents rank first (closest vectors), the open ones after.
    let mut legal = Vec::new();
    for i in 0..3 {
        let document = DocumentId::new();
        let mut written = points(&bm25, document, &text, [1.0, 0.01 * i as f32, 0.0, 0.0], false);
        for point in &mut written {
            point.payload.access = vec!["group:legal".into()];
        }
        t.index.upsert(&collection, written).await.unwrap();
        legal.push(document);
    }
    let open_doc = DocumentId::new();
    t.index
        .upsert(&collection, points(&bm25, open_doc, &text, [0.5, 0.5, 0.0, 0.0], false))
        .await
        .unwrap();
    let alice_doc = DocumentId::new();
    let mut alice_points = points(&bm25, alice_doc, &text, [0.4, 0.6, 0.0, 0.0], false);
    for point in &mut alice_points {
        point.payload.access = vec!["user:alice@corp".into()];
    }
    t.index.upsert(&collection, alice_points).await.unwrap();

    let search = |readers: Readers, limit: usize| {
        let mut q = query(&bm25, "merger closes", [1.0, 0.0, 0.0, 0.0]);
        q.readers = readers;
        q.limit = limit;
        let index = t.index.clone();
        let collection = collection.clone();
        async move { index.search(&collection, q).await.unwrap() }
    };
    // Everyone: 20 chunks; legal's 12 first.
    let all = search(Readers::All, 20).await;
    assert_eq!(all.len(), 20);
    assert!(legal.contains(&all[0].payload.document_id));
    // No principals: the open document alone, its 4 chunks, though 4 were asked
    // and legal's rank higher.
    let outsider = search(Readers::Principals(vec![]), 4).await;
    assert_eq!(outsider.len(), 4);
    assert_eq!(documents_of(&outsider), vec![open_doc]);
    // Alice: hers and the open one; legal: theirs and the open one.
    let alice = search(Readers::Principals(vec!["user:alice@corp".into()]), 20).await;
    assert_eq!(alice.len(), 8);
    assert!(
        alice
            .iter()
            .all(|c| [open_doc, alice_doc].contains(&c.payload.document_id))
    );
    let lawyer = search(Readers::Principals(vec!["group:legal".into(), "user:bob".into()]), 5).await;
    assert_eq!(lawyer.len(), 5, "top 5 permitted chunks");
    assert!(
        lawyer.iter().all(|c| legal.contains(&c.payload.document_id)),
        "legal's rank first for legal"
    );

    // Opened up in place: the next search sees it.
    t.index
        .set_document_payload(&collection, legal[0], &[], &Metadata::default())
        .await
        .unwrap();
    let outsider = search(Readers::Principals(vec![]), 20).await;
    assert_eq!(outsider.len(), 8);
    assert!(outsider.iter().any(|c| c.payload.document_id == legal[0]));
    // And closed again to alice alone.
    t.index
        .set_document_payload(
            &collection,
            open_doc,
            &["user:alice@corp".to_string()],
            &Metadata::default(),
        )
        .await
        .unwrap();
    let outsider = search(Readers::Principals(vec![]), 20).await;
    assert_eq!(outsider.len(), 4);
    assert_eq!(documents_of(&outsider), vec![legal[0]]);
}

on_every_index!(
    access_is_filtered_inside_the_index,
    pending_points_are_found_only_once_published,
    a_rebuild_serves_the_old_generation_until_it_is_swapped_in,
    the_bm25_weight_tips_a_tie_between_the_sides,
);
