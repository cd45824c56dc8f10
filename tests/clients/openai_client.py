"""docqa's OpenAI-compatible routes driven by the official `openai` package, as a
chat UI or an app would drive them: models, a plain and a streamed completion
with their citations, a multi-turn conversation, a wrong model and a bad key.

Run by tests/api/openai_compat.rs, which starts docqa (with a scripted LLM) and
sets DOCQA_URL, DOCQA_KEY, QUESTION, FOLLOW_UP and STANDALONE. Prints one line a
check; exits non-zero at the first that fails.
"""

import os
import sys

import openai
from openai import OpenAI

URL = os.environ["DOCQA_URL"] + "/v1"
QUESTION = os.environ["QUESTION"]
FOLLOW_UP = os.environ["FOLLOW_UP"]
STANDALONE = os.environ["STANDALONE"]

client = OpenAI(base_url=URL, api_key=os.environ["DOCQA_KEY"], max_retries=0)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def extra(model, name):
    """A field docqa adds to OpenAI's objects (the SDK keeps unknown fields)."""
    value = getattr(model, name, None)
    if value is None and model.model_extra:
        value = model.model_extra.get(name)
    return value


def ask(messages, **options):
    return client.chat.completions.create(model="default", messages=messages, **options)


models = [m.id for m in client.models.list()]
check("default" in models, f"models.list() names the collections: {models}")
check(client.models.retrieve("default").id == "default", "models.retrieve('default')")
print("ok models")

plain = ask([{"role": "user", "content": QUESTION}])
message = plain.choices[0].message
citations = extra(message, "citations")
check(plain.object == "chat.completion" and plain.model == "default", plain)
check(plain.choices[0].finish_reason == "stop", plain)
check(message.role == "assistant" and "[1]" in message.content, message)
check(citations and citations[0]["index"] == 1 and citations[0]["filename"] == "terms.txt", citations)
check(citations[0]["quote"] in message.content, (citations, message.content))
check(extra(message, "grounded") is True, message)
usage = plain.usage
check(usage.prompt_tokens > 0 and usage.completion_tokens > 0, usage)
check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage)
print("ok plain completion with citations")

text, roles, last, streamed_usage = "", [], None, None
for chunk in ask([{"role": "user", "content": QUESTION}], stream=True, stream_options={"include_usage": True}):
    check(chunk.object == "chat.completion.chunk", chunk)
    if chunk.usage:
        streamed_usage = chunk.usage
    if not chunk.choices:
        continue
    choice = chunk.choices[0]
    if choice.delta.role:
        roles.append(choice.delta.role)
    if choice.delta.content:
        text += choice.delta.content
    if choice.finish_reason:
        last = choice
check(roles == ["assistant"], roles)
check(text == message.content, (text, message.content))
check(last is not None and last.finish_reason == "stop", last)
streamed_citations = extra(last.delta, "citations")
check(streamed_citations and [c["quote"] for c in streamed_citations] == [c["quote"] for c in citations],
      (streamed_citations, citations))
check(streamed_usage is not None and streamed_usage.total_tokens > 0, streamed_usage)
print("ok streamed completion, citations in the last chunk")

multi = ask([
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": QUESTION},
    {"role": "assistant", "content": message.content},
    {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]},
])
followed = multi.choices[0].message
check(extra(followed, "retrieval_query") == STANDALONE, followed)
check(extra(followed, "citations"), followed)
print("ok multi-turn: the follow-up rewritten")

try:
    client.chat.completions.create(model="no-such-collection", messages=[{"role": "user", "content": QUESTION}])
    check(False, "a wrong model answered")
except openai.NotFoundError as e:
    check(e.status_code == 404 and e.code == "model_not_found" and e.param == "model", (e.status_code, e.body))
print("ok wrong model: 404 model_not_found")

try:
    from openai import Omit
except ImportError:
    from openai._types import Omit
# No key at all (the SDK insists on one: its header is taken off), then a bad one.
for key, headers in [("unused", {"Authorization": Omit()}), ("sk-not-a-docqa-key", {})]:
    stranger = OpenAI(base_url=URL, api_key=key, max_retries=0)
    try:
        stranger.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}],
                                         extra_headers=headers)
        check(False, f"key {key!r} answered")
    except openai.AuthenticationError as e:
        check(e.status_code == 401 and e.type == "authentication_error", (e.status_code, e.body))
    try:
        stranger.models.list(extra_headers=headers)
        check(False, f"key {key!r} listed models")
    except openai.AuthenticationError:
        pass
print("ok no key / bad key: 401")

try:
    ask([{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Hello"}])
    check(False, "a conversation ending with the assistant answered")
except openai.UnprocessableEntityError as e:
    check(e.type == "invalid_request_error", e.body)
print("ok last message not the user's: 422")

try:
    ask([{"role": "system", "content": "You are helpful."}])
    check(False, "a chat without a user message answered")
except openai.UnprocessableEntityError as e:
    check(e.type == "invalid_request_error" and "no user message" in str(e.body), e.body)
print("ok no user message: 422")
