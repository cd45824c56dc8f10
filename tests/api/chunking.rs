//! Chunking with the model's tokenizer: the per-document sizer (one tokenization
//! of the whole text) cuts exactly where text-splitter's own tokenizer sizer cuts.

use docqa::config::ChunkSettings;
use docqa::domain::{ContentType, DocumentId};
use docqa::embed::sizing_tokenizer;
use docqa::ingest::chunk::{Chunker, join_pages};
use docqa::ingest::extract::extract_bytes;
use text_splitter::{ChunkConfig, TextSplitter};

use crate::helpers::{corpus, model_dir};

#[test]
fn the_document_sizer_cuts_where_the_tokenizer_does() {
    let tokenizer = tokenizers::Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
    let tokenizer = sizing_tokenizer(&tokenizer);
    let settings = ChunkSettings {
        tokens: 200,
        overlap: 30,
    };
    let chunker = Chunker::new(&settings, Some(tokenizer.clone())).unwrap();
    let reference = TextSplitter::new(ChunkConfig::new(200).with_overlap(30).unwrap().with_sizer(tokenizer));
    for file in ["GeoTopo-komprimiert.pdf", "multicolumn.pdf", "pdflatex-4-pages.pdf"] {
        let pages = extract_bytes(ContentType::Pdf, &corpus(file)).unwrap().pages;
        let (text, _) = join_pages(&pages);
        let expected: Vec<&str> = reference
            .chunks(&text)
            .filter(|chunk| chunk.chars().any(char::is_alphanumeric))
            .collect();
        let chunks = chunker.chunk(DocumentId::new(), &pages);
        assert!(!chunks.is_empty(), "{file}");
        let got: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(got, expected, "{file}");
    }
}
