//! `LlmClient` on async-openai: chat completions with a strict JSON-schema
//! response format, against any OpenAI-compatible endpoint.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, CreateChatCompletionRequest, ResponseFormat,
    ResponseFormatJsonSchema,
};
use async_trait::async_trait;

use super::llm::{ContextPassage, LlmAnswer, LlmClient, LlmError};
use super::prompt;
use crate::config::LlmSettings;

pub struct OpenAiLlm {
    client: Client<OpenAIConfig>,
    model: String,
    timeout_secs: u64,
}

impl OpenAiLlm {
    pub fn new(settings: &LlmSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: crate::openai::client(settings)?,
            model: settings.model.clone(),
            timeout_secs: settings.timeout.as_secs(),
        })
    }

    fn request(&self, question: &str, context: &[ContextPassage]) -> CreateChatCompletionRequest {
        let system = ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(prompt::SYSTEM_PROMPT.to_string()),
            name: None,
        });
        let user = ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(prompt::user_message(question, context)),
            name: None,
        });
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![system, user],
            temperature: Some(0.0),
            response_format: Some(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("An answer whose claims cite verbatim quotes of the sources".into()),
                    name: "cited_answer".into(),
                    schema: prompt::answer_schema(),
                    strict: Some(true),
                },
            }),
            ..Default::default()
        }
    }
}

#[async_trait]
impl LlmClient for OpenAiLlm {
    fn model(&self) -> &str {
        &self.model
    }

    async fn answer(&self, question: &str, context: &[ContextPassage]) -> Result<LlmAnswer, LlmError> {
        let response = self
            .client
            .chat()
            .create(self.request(question, context))
            .await
            .map_err(|e| match e {
                OpenAIError::Reqwest(ref inner) if inner.is_timeout() => LlmError::Timeout(self.timeout_secs),
                // A 200 whose body is not a chat completion at all.
                OpenAIError::JSONDeserialize(err, _) => LlmError::InvalidOutput(err.to_string()),
                other => LlmError::Upstream(other.to_string()),
            })?;
        let content = response
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .ok_or_else(|| LlmError::InvalidOutput("the reply has no message content".into()))?;
        parse_answer(&content)
    }
}

/// The model's content as an answer. Tolerates a Markdown code fence around the
/// JSON, which some OpenAI-compatible servers add.
pub fn parse_answer(content: &str) -> Result<LlmAnswer, LlmError> {
    let trimmed = content.trim();
    let json = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(json).map_err(|e| LlmError::InvalidOutput(format!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_or_without_a_fence() {
        let raw = r#"{"answer":"A [1]","citations":[{"chunk_id":"x","quote":"q"}]}"#;
        assert_eq!(parse_answer(raw).unwrap().citations.len(), 1);
        assert!(parse_answer(&format!("```json\n{raw}\n```")).is_ok());
        assert!(matches!(parse_answer("I think the answer is 4"), Err(LlmError::InvalidOutput(_))));
        assert!(matches!(parse_answer(r#"{"answer":"x"}"#), Err(LlmError::InvalidOutput(_))));
    }
}
