//! `LlmClient` on async-openai: chat completions with a strict JSON-schema
//! response format, against any OpenAI-compatible endpoint. Retries happen
//! below (crate::openai::retry), all within `LLM_TIMEOUT_SECS`; a circuit
//! breaker above stops calling a provider that keeps failing.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent, CreateChatCompletionRequest,
    ResponseFormat, ResponseFormatJsonSchema,
};
use async_trait::async_trait;
use futures_util::StreamExt;
use secrecy::ExposeSecret;

use super::breaker::CircuitBreaker;
use super::followup::{self, Exchange};
use super::llm::{ContextPassage, LlmAnswer, LlmClient, LlmError, OnDelta};
use super::partial_json::AnswerFieldScanner;
use super::prompt;
use crate::config::LlmSettings;

pub struct OpenAiLlm {
    client: Client<OpenAIConfig>,
    model: String,
    timeout: std::time::Duration,
    breaker: CircuitBreaker,
    /// Taken out of what the provider says before it is logged: providers echo it.
    api_key: Option<secrecy::SecretString>,
}

impl OpenAiLlm {
    pub fn new(settings: &LlmSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: crate::openai::client(settings)?,
            model: settings.model.clone(),
            timeout: settings.timeout,
            breaker: CircuitBreaker::new(settings.breaker_failures, settings.breaker_cooldown),
            api_key: settings.api_key.clone(),
        })
    }

    /// The reply's content: whole, or streamed with the answer text handed to
    /// `on_delta` as it comes. Within the timeout, retries included.
    async fn call(
        &self,
        request: CreateChatCompletionRequest,
        on_delta: Option<OnDelta<'_>>,
    ) -> Result<String, LlmError> {
        let call = async {
            match on_delta {
                None => {
                    let response = self
                        .client
                        .chat()
                        .create(request)
                        .await
                        .map_err(|e| self.llm_error(e))?;
                    response
                        .choices
                        .into_iter()
                        .next()
                        .and_then(|choice| choice.message.content)
                        .ok_or_else(no_content)
                }
                Some(on_delta) => {
                    let mut stream = self
                        .client
                        .chat()
                        .create_stream(request)
                        .await
                        .map_err(|e| self.llm_error(e))?;
                    let mut content = String::new();
                    let mut scanner = AnswerFieldScanner::default();
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(|e| self.llm_error(e))?;
                        for piece in chunk.choices.into_iter().filter_map(|choice| choice.delta.content) {
                            content.push_str(&piece);
                            let text = scanner.feed(&piece);
                            if !text.is_empty() {
                                on_delta(text);
                            }
                        }
                    }
                    if content.is_empty() {
                        Err(no_content())
                    } else {
                        Ok(content)
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| LlmError::Timeout(self.timeout.as_secs()))?
    }

    fn llm_error(&self, e: OpenAIError) -> LlmError {
        match e {
            OpenAIError::Reqwest(ref inner) if inner.is_timeout() => LlmError::Timeout(self.timeout.as_secs()),
            // A 200 whose body is not a chat completion at all.
            OpenAIError::JSONDeserialize(err, _) => LlmError::InvalidOutput(err.to_string()),
            // What the provider said goes to the log, not to the client: it
            // may echo the key, name the account or the deployment.
            other => {
                let said = redact(&other.to_string(), self.api_key.as_ref().map(|k| k.expose_secret()));
                tracing::warn!(error = %said.escape_debug(), "the LLM provider call failed");
                LlmError::Upstream(public_detail(&other))
            }
        }
    }

    /// Asks, unless the circuit is open; tells the breaker how it went.
    async fn guarded(
        &self,
        request: CreateChatCompletionRequest,
        on_delta: Option<OnDelta<'_>>,
    ) -> Result<String, LlmError> {
        self.breaker.permit().map_err(|open| LlmError::Unavailable {
            failures: open.failures,
            retry_in_secs: open.retry_in.as_secs().max(1),
        })?;
        let content = self.call(request, on_delta).await;
        match &content {
            // The provider is down or drowning; a bad reply still means it is up.
            Err(LlmError::Timeout(_) | LlmError::Upstream(_)) => self.breaker.failed(),
            _ => self.breaker.succeeded(),
        }
        content
    }

    /// A system and a user message, and a strict JSON schema for the reply.
    fn request(&self, system: &str, user: String, schema: Schema) -> CreateChatCompletionRequest {
        let system = ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(system.to_string()),
            name: None,
        });
        let user = ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(user),
            name: None,
        });
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![system, user],
            temperature: Some(0.0),
            response_format: Some(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some(schema.description.into()),
                    name: schema.name.into(),
                    schema: schema.schema,
                    strict: Some(true),
                },
            }),
            ..Default::default()
        }
    }

    fn answer_request(&self, question: &str, context: &[ContextPassage]) -> CreateChatCompletionRequest {
        self.request(
            prompt::SYSTEM_PROMPT,
            prompt::user_message(question, context),
            Schema {
                name: "cited_answer",
                description: "An answer whose claims cite verbatim quotes of the sources",
                schema: prompt::answer_schema(),
            },
        )
    }
}

/// The structured reply a request asks for.
struct Schema {
    name: &'static str,
    description: &'static str,
    schema: serde_json::Value,
}

#[async_trait]
impl LlmClient for OpenAiLlm {
    fn model(&self) -> &str {
        &self.model
    }

    async fn answer(&self, question: &str, context: &[ContextPassage]) -> Result<LlmAnswer, LlmError> {
        parse_answer(&self.guarded(self.answer_request(question, context), None).await?)
    }

    async fn answer_streaming(
        &self,
        question: &str,
        context: &[ContextPassage],
        on_delta: OnDelta<'_>,
    ) -> Result<LlmAnswer, LlmError> {
        parse_answer(
            &self
                .guarded(self.answer_request(question, context), Some(on_delta))
                .await?,
        )
    }

    async fn rewrite(&self, history: &[Exchange], question: &str) -> Result<String, LlmError> {
        let request = self.request(
            followup::REWRITE_SYSTEM_PROMPT,
            followup::rewrite_user_message(history, question),
            Schema {
                name: "standalone_question",
                description: "The last question of the conversation, rewritten to stand on its own",
                schema: followup::rewrite_schema(),
            },
        );
        followup::parse_rewrite(&self.guarded(request, None).await?)
    }
}

fn no_content() -> LlmError {
    LlmError::InvalidOutput("the reply has no message content".into())
}

/// The model's content as an answer.
pub fn parse_answer(content: &str) -> Result<LlmAnswer, LlmError> {
    super::llm::json_reply(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_or_without_a_fence() {
        let raw = r#"{"answer":"A [1]","citations":[{"chunk_id":"x","quote":"q"}]}"#;
        assert_eq!(parse_answer(raw).unwrap().citations.len(), 1);
        assert!(parse_answer(&format!("```json\n{raw}\n```")).is_ok());
        assert!(matches!(
            parse_answer("I think the answer is 4"),
            Err(LlmError::InvalidOutput(_))
        ));
        assert!(matches!(
            parse_answer(r#"{"answer":"x"}"#),
            Err(LlmError::InvalidOutput(_))
        ));
    }
}

/// What a client is told of a failed provider call: its HTTP status, or that
/// it could not be reached.
fn public_detail(e: &OpenAIError) -> String {
    let status = match e {
        OpenAIError::ApiError(response) => Some(response.status_code),
        OpenAIError::Reqwest(e) => e.status(),
        _ => None,
    };
    match (status, e) {
        (Some(status), _) => format!("the LLM provider answered HTTP {}", status.as_u16()),
        (None, OpenAIError::Reqwest(e)) if e.is_connect() => "the LLM provider could not be reached".into(),
        (None, OpenAIError::StreamError(_)) => "the LLM provider's stream broke off".into(),
        (None, _) => "the call to the LLM provider failed".into(),
    }
}

/// `text` without the API key, nor anything shaped like an OpenAI-style key.
fn redact(text: &str, api_key: Option<&str>) -> String {
    let mut text = match api_key.filter(|k| k.len() >= 4) {
        Some(key) => text.replace(key, "[redacted]"),
        None => text.to_string(),
    };
    let mut from = 0;
    while let Some(found) = text[from..].find("sk-") {
        let start = from + found;
        let in_a_word = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(text.len(), |n| start + n);
        if in_a_word {
            from = end;
            continue;
        }
        text.replace_range(start..end, "[redacted]");
        from = start + "[redacted]".len();
    }
    text
}

#[cfg(test)]
mod redaction_tests {
    use super::redact;

    #[test]
    fn keys_are_taken_out_of_provider_errors() {
        let said =
            "401 invalid_request_error: Incorrect API key provided: sk-proj-abc_123-XYZ. (code: invalid_api_key)";
        let redacted = redact(said, None);
        assert!(!redacted.contains("abc_123"), "{redacted}");
        assert!(
            redacted.contains("Incorrect API key provided: [redacted]."),
            "{redacted}"
        );
        assert_eq!(
            redact("bad key my-secret-key", Some("my-secret-key")),
            "bad key [redacted]"
        );
        assert_eq!(redact("the disk-full task-runner", None), "the disk-full task-runner");
    }
}
