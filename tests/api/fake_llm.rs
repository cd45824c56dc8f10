//! A small OpenAI-compatible server inside the test, so that the real
//! async-openai client code runs against it. Chat: it reads the sources out of
//! the prompt and answers as told. Embeddings: a hashed bag of words of
//! `EMBEDDING_DIMENSION` dimensions, another "model" than the local one, whose
//! vectors still rank texts that share words.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// Cites the first source with a verbatim quote.
    CiteFirstSource,
    /// Cites the first source, then a chunk id it was never given.
    CiteFirstAndForeign,
    /// Cites only a chunk id it was never given.
    CiteForeignChunk,
    /// Cites the first source with a quote that is not in it.
    Misquote,
    /// Answers with text that is not JSON, every time.
    InvalidJson,
    /// Invalid the first time, good the second.
    InvalidThenGood,
    /// Answers after a pause.
    Slow(Duration),
    /// HTTP 500 with an OpenAI error body.
    ServerError,
}

#[derive(Clone)]
struct State {
    behaviour: Behaviour,
    calls: Arc<AtomicUsize>,
    /// Texts embedded so far.
    embedded: Arc<AtomicUsize>,
    prompts: Arc<Mutex<Vec<String>>>,
}

pub struct FakeLlm {
    pub base_url: String,
    calls: Arc<AtomicUsize>,
    embedded: Arc<AtomicUsize>,
    prompts: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

pub const FOREIGN_CHUNK: &str = "00000000-0000-5000-8000-000000000042";
pub const EMBEDDING_DIMENSION: usize = 64;

impl FakeLlm {
    pub fn start(behaviour: Behaviour) -> Self {
        let state = State {
            behaviour,
            calls: Arc::new(AtomicUsize::new(0)),
            embedded: Arc::new(AtomicUsize::new(0)),
            prompts: Arc::new(Mutex::new(Vec::new())),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/chat/completions", web::post().to(chat))
                .route("/v1/embeddings", web::post().to(embeddings))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url: format!("http://{addr}/v1"),
            calls: state.calls,
            embedded: state.embedded,
            prompts: state.prompts,
            handle,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many texts the embeddings endpoint has embedded.
    pub fn embedded(&self) -> usize {
        self.embedded.load(Ordering::SeqCst)
    }

    pub fn last_prompt(&self) -> Option<String> {
        self.prompts.lock().unwrap().last().cloned()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// (chunk id, text) of each `<source>` in the user message.
pub fn sources(prompt: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find("<source chunk_id=\"") {
        rest = &rest[start + "<source chunk_id=\"".len()..];
        let id_end = rest.find('"').expect("closing quote");
        let id = rest[..id_end].to_string();
        let body_start = rest.find(">\n").expect("end of tag") + 2;
        let body_end = rest.find("\n</source>").expect("closing tag");
        found.push((id, rest[body_start..body_end].to_string()));
        rest = &rest[body_end..];
    }
    found
}

/// The first eight words of a text, verbatim (line breaks and all).
fn first_words(text: &str) -> String {
    let text = text.trim_start();
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                words += 1;
                if words == 8 {
                    return text[..i].to_string();
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    text.trim_end().to_string()
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-llm",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
}

async fn chat(state: web::Data<State>, body: web::Json<Value>) -> HttpResponse {
    let call = state.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    state.prompts.lock().unwrap().push(prompt.clone());
    let sources = sources(&prompt);
    let (first_id, first_text) = sources.first().cloned().unwrap_or_default();
    let quote = first_words(&first_text);
    let good = json!({
        "answer": format!("The documents say: {quote} [1]."),
        "citations": [{"chunk_id": first_id, "quote": quote}]
    });
    let content = match state.behaviour {
        Behaviour::CiteFirstSource => good.to_string(),
        Behaviour::CiteFirstAndForeign => json!({
            "answer": "First claim [1]. Invented claim [2].",
            "citations": [
                {"chunk_id": first_id, "quote": quote},
                {"chunk_id": FOREIGN_CHUNK, "quote": quote}
            ]
        })
        .to_string(),
        Behaviour::CiteForeignChunk => json!({
            "answer": "Invented claim [1].",
            "citations": [{"chunk_id": FOREIGN_CHUNK, "quote": quote}]
        })
        .to_string(),
        Behaviour::Misquote => json!({
            "answer": "Misquoted claim [1].",
            "citations": [{"chunk_id": first_id, "quote": "words that appear in no source at all, anywhere"}]
        })
        .to_string(),
        Behaviour::InvalidJson => "Sure! The answer is probably 42.".to_string(),
        Behaviour::InvalidThenGood if call == 1 => "{\"answer\": \"unterminated".to_string(),
        Behaviour::InvalidThenGood => good.to_string(),
        Behaviour::Slow(pause) => {
            tokio::time::sleep(pause).await;
            good.to_string()
        }
        Behaviour::ServerError => {
            return HttpResponse::InternalServerError().json(json!({
                "error": {"message": "the model crashed", "type": "server_error", "param": null, "code": null}
            }));
        }
    };
    HttpResponse::Ok().json(completion(&content))
}

/// Each lowercased word adds 1 to the dimension its hash picks; normalised.
pub fn hashed_embedding(text: &str) -> Vec<f32> {
    use std::hash::{Hash, Hasher};
    let mut vector = vec![0f32; EMBEDDING_DIMENSION];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        word.to_lowercase().hash(&mut hasher);
        vector[(hasher.finish() % EMBEDDING_DIMENSION as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    vector.iter_mut().for_each(|x| *x /= norm);
    vector
}

async fn embeddings(state: web::Data<State>, body: web::Json<Value>) -> HttpResponse {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    state.embedded.fetch_add(inputs.len(), Ordering::SeqCst);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": hashed_embedding(text)}))
        .collect();
    HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": 1, "total_tokens": 1}
    }))
}
