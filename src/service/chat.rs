//! A chat the client holds, as OpenAI's `messages` (`/v1/chat/completions`):
//! the last user message is the question and the earlier user and assistant
//! messages are its history, so that a follow-up is rewritten to stand alone
//! as in a conversation. Other roles (`system`, `developer`, `tool`) are
//! skipped: the answer's instructions are docqa's.

use crate::answer::{Answerer, Exchange, QueryRequest};
use crate::domain::{AnswerMode, Filter};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("messages: no user message to answer")]
    NoQuestion,
    #[error("messages: the last message must be the user's question")]
    LastNotUser,
}

/// A chat as asked: each message's role and text, oldest first, and how to answer.
pub struct ChatRequest {
    pub messages: Vec<(String, String)>,
    pub top_k: Option<usize>,
    pub filter: Option<Filter>,
    pub mode: AnswerMode,
    pub stream: bool,
}

/// A chat's last question with the exchanges before it.
pub struct ChatTurn {
    pub query: QueryRequest,
    pub history: Vec<Exchange>,
    /// The user and assistant messages in tokens: what the answer read
    /// (OpenAI's `usage.prompt_tokens`).
    pub prompt_tokens: usize,
}

impl ChatTurn {
    /// The question and its history; the question is not checked yet
    /// (`Answerer::check`).
    pub fn read(answerer: &Answerer, request: ChatRequest) -> Result<Self, ChatError> {
        let texts: Vec<(String, String)> = request
            .messages
            .into_iter()
            .filter(|(role, _)| matches!(role.as_str(), "user" | "assistant"))
            .collect();
        let Some((last_role, question)) = texts.last().cloned() else {
            return Err(ChatError::NoQuestion);
        };
        if last_role != "user" {
            return Err(ChatError::LastNotUser);
        }
        let prompt_tokens = texts.iter().map(|(_, text)| answerer.count_tokens(text)).sum();
        let history = exchanges(answerer, &texts[..texts.len() - 1]);
        Ok(Self {
            query: QueryRequest {
                question,
                top_k: request.top_k,
                filter: request.filter,
                mode: request.mode,
                stream: request.stream,
            },
            history,
            prompt_tokens,
        })
    }
}

/// The earlier messages as exchanges: each user message with the assistant's
/// reply after it (if any); their retrieval queries by rule, one from the other.
fn exchanges(answerer: &Answerer, earlier: &[(String, String)]) -> Vec<Exchange> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (role, text) in earlier {
        match (role.as_str(), pairs.last_mut()) {
            ("assistant", Some((_, answer))) if answer.is_empty() => *answer = text.clone(),
            ("assistant", _) => {}
            _ => pairs.push((text.clone(), String::new())),
        }
    }
    let queries = answerer.follow_ups().rule_chain(pairs.iter().map(|(q, _)| q.as_str()));
    pairs
        .into_iter()
        .zip(queries)
        .map(|((question, answer), retrieval_query)| Exchange {
            question,
            retrieval_query,
            answer,
        })
        .collect()
}
