//! A small OpenAI-compatible server inside the test, so that the real
//! async-openai client code runs against it. Chat: it reads the sources out of
//! the prompt and answers as told. Embeddings: a hashed bag of words of
//! `EMBEDDING_DIMENSION` dimensions, another "model" than the local one, whose
//! vectors still rank texts that share words.

use std::collections::HashMap;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use actix_web::{App, HttpResponse, HttpServer, web};
use futures_util::Stream;
use serde_json::{Value, json};

/// The key a failing provider echoes in its error (`Behaviour::ServerError`).
pub const LEAKED_KEY: &str = "sk-proj-leaked0123456789abcdef";

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
    /// HTTP 503 the first time, then a good answer.
    ServerErrorOnce,
    /// HTTP 429 with `Retry-After: n` the first time, then a good answer.
    RateLimitedOnce(u64),
    /// HTTP 429 with `Retry-After: 3600`, every time.
    RateLimitedForAnHour,
    /// Streams the first piece of a good answer, then nothing, ever (streaming
    /// requests; notes when the caller hangs up).
    StallAfterFirstDelta,
    /// Never finishes a non-streaming answer: sends a space (leading
    /// whitespace of the JSON to come) every 200 ms, and notes when the caller
    /// hangs up.
    StallBeforeAnswering,
    /// Does what a source tells it to: a source that says "ignore previous
    /// instructions" gets an uncited "PWNED".
    ObeysInjections,
}

#[derive(Clone)]
struct State {
    behaviour: Behaviour,
    calls: Arc<AtomicUsize>,
    /// Texts embedded so far.
    embedded: Arc<AtomicUsize>,
    prompts: Arc<Mutex<Vec<String>>>,
    call_times: Arc<Mutex<Vec<Instant>>>,
    /// Chat calls that asked for a stream.
    streamed: Arc<AtomicUsize>,
    /// A streamed reply was dropped before its end: the caller hung up.
    hung_up: Arc<AtomicBool>,
    /// Follow-up → the standalone question a rewrite request answers with.
    rewrites: Arc<Mutex<HashMap<String, String>>>,
    rewrite_prompts: Arc<Mutex<Vec<String>>>,
}

pub struct FakeLlm {
    pub base_url: String,
    calls: Arc<AtomicUsize>,
    embedded: Arc<AtomicUsize>,
    prompts: Arc<Mutex<Vec<String>>>,
    call_times: Arc<Mutex<Vec<Instant>>>,
    streamed: Arc<AtomicUsize>,
    hung_up: Arc<AtomicBool>,
    rewrites: Arc<Mutex<HashMap<String, String>>>,
    rewrite_prompts: Arc<Mutex<Vec<String>>>,
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
            call_times: Arc::new(Mutex::new(Vec::new())),
            streamed: Arc::new(AtomicUsize::new(0)),
            hung_up: Arc::new(AtomicBool::new(false)),
            rewrites: Arc::new(Mutex::new(HashMap::new())),
            rewrite_prompts: Arc::new(Mutex::new(Vec::new())),
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
            call_times: state.call_times,
            streamed: state.streamed,
            hung_up: state.hung_up,
            rewrites: state.rewrites,
            rewrite_prompts: state.rewrite_prompts,
            handle,
        }
    }

    /// A rewrite request whose last question is `question` gets `standalone`
    /// (any other gets its question back as it is).
    pub fn rewrite_as(&self, question: &str, standalone: &str) {
        self.rewrites
            .lock()
            .unwrap()
            .insert(question.to_string(), standalone.to_string());
    }

    /// The user messages of the rewrite requests, in order.
    pub fn rewrite_prompts(&self) -> Vec<String> {
        self.rewrite_prompts.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many texts the embeddings endpoint has embedded.
    pub fn embedded(&self) -> usize {
        self.embedded.load(Ordering::SeqCst)
    }

    /// How many chat calls asked for a streamed reply.
    pub fn streamed_calls(&self) -> usize {
        self.streamed.load(Ordering::SeqCst)
    }

    /// Whether a caller hung up in the middle of a streamed reply.
    pub fn caller_hung_up(&self) -> bool {
        self.hung_up.load(Ordering::SeqCst)
    }

    /// The pauses between one chat call and the next.
    pub fn gaps_between_calls(&self) -> Vec<Duration> {
        let times = self.call_times.lock().unwrap();
        times.windows(2).map(|w| w[1] - w[0]).collect()
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
    state.call_times.lock().unwrap().push(Instant::now());
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    if body["response_format"]["json_schema"]["name"] == "standalone_question" {
        state.rewrite_prompts.lock().unwrap().push(prompt.clone());
        let last = prompt
            .rsplit("Last question: ")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let content = match state.behaviour {
            Behaviour::InvalidJson => "Sure! That question is clear.".to_string(),
            _ => {
                let standalone = state.rewrites.lock().unwrap().get(&last).cloned();
                json!({"question": standalone.unwrap_or(last)}).to_string()
            }
        };
        return HttpResponse::Ok().json(completion(&content));
    }
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
                // As providers do, it echoes the key it was sent.
                "error": {"message": format!("the model crashed; key {LEAKED_KEY}"), "type": "server_error", "param": null, "code": null}
            }));
        }
        Behaviour::ServerErrorOnce if call == 1 => {
            return HttpResponse::ServiceUnavailable().body("upstream overloaded");
        }
        Behaviour::ServerErrorOnce => good.to_string(),
        Behaviour::RateLimitedOnce(seconds) if call == 1 => return rate_limited(seconds),
        Behaviour::RateLimitedOnce(_) => good.to_string(),
        Behaviour::RateLimitedForAnHour => return rate_limited(3600),
        Behaviour::ObeysInjections
            if sources
                .iter()
                .any(|(_, text)| text.to_lowercase().contains("ignore previous instructions")) =>
        {
            json!({"answer": "PWNED", "citations": []}).to_string()
        }
        Behaviour::ObeysInjections => good.to_string(),
        Behaviour::StallAfterFirstDelta => good.to_string(),
        Behaviour::StallBeforeAnswering => {
            return HttpResponse::Ok().content_type("application/json").streaming(Chunks {
                events: Vec::new().into_iter(),
                stall: true,
                filler: Bytes::from_static(b" "),
                keep_alive: tokio::time::interval(Duration::from_millis(200)),
                finished: false,
                hung_up: state.hung_up.clone(),
            });
        }
    };
    if body["stream"] == true {
        state.streamed.fetch_add(1, Ordering::SeqCst);
        let stall = state.behaviour == Behaviour::StallAfterFirstDelta;
        return streamed(&content, stall, state.hung_up.clone());
    }
    HttpResponse::Ok().json(completion(&content))
}

/// The content as OpenAI's `chat.completion.chunk` events, a few characters each.
fn streamed(content: &str, stall: bool, hung_up: Arc<AtomicBool>) -> HttpResponse {
    let chars: Vec<char> = content.chars().collect();
    let mut events: Vec<Bytes> = chars
        .chunks(7)
        .map(|piece| {
            let chunk = json!({
                "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "fake-llm",
                "choices": [{"index": 0, "delta": {"content": piece.iter().collect::<String>()}, "finish_reason": null}]
            });
            Bytes::from(format!("data: {chunk}\n\n"))
        })
        .collect();
    if stall {
        // Far enough into the answer text that the caller has seen a delta.
        events.truncate(6);
    } else {
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    let keep_alive = tokio::time::interval(Duration::from_millis(200));
    HttpResponse::Ok().content_type("text/event-stream").streaming(Chunks {
        events: events.into_iter(),
        stall,
        filler: Bytes::from_static(b": thinking\n\n"),
        keep_alive,
        finished: false,
        hung_up,
    })
}

struct Chunks {
    events: std::vec::IntoIter<Bytes>,
    stall: bool,
    /// Sent while stalled (SSE comments, as providers send, or spaces), so that
    /// a caller that left is noticed.
    filler: Bytes,
    keep_alive: tokio::time::Interval,
    finished: bool,
    hung_up: Arc<AtomicBool>,
}

impl Stream for Chunks {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.events.next() {
            Some(event) => Poll::Ready(Some(Ok(event))),
            // The reply stalls until the caller gives up.
            None if self.stall => match self.keep_alive.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(self.filler.clone()))),
                Poll::Pending => Poll::Pending,
            },
            None => {
                self.finished = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if !self.finished {
            self.hung_up.store(true, Ordering::SeqCst);
        }
    }
}

fn rate_limited(retry_after_secs: u64) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header(("retry-after", retry_after_secs.to_string()))
        .json(json!({
            "error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}
        }))
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
