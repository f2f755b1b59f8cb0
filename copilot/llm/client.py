"""The one seam between the copilot and a chat model.

Every model call in the codebase goes through `invoke_structured`, so there is exactly one place that
decides whether a call may happen (`ALLOW_MODEL_REQUESTS`, which the test suite turns off), one place
that maps transport failures to `UpstreamError`, and one place that turns the model's text into a
validated object. `stream_text` is the streaming twin of that seam: the same guard and error mapping,
chunk by chunk, so drafts can be shown while the model still writes.

How the answer is constrained is a setting (`COPILOT_LLM_OUTPUT_MODE`): `prompt` (the default) only
asks for JSON in the prompt, which every OpenAI-compatible server accepts; `json_object` adds
`response_format: {"type": "json_object"}` (JSON mode); `json_schema` adds a strict JSON schema of
the answer. Whatever the mode, answers are read tolerantly (code fences and reasoning preambles are
stripped) but validated strictly.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import openai
import pydantic
from langchain_core.exceptions import ModelError, ModelTimeoutError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from copilot.config import Settings
from copilot.errors import CopilotError, UpstreamError

__all__ = [
    "ALLOW_MODEL_REQUESTS",
    "MalformedAnswerError",
    "ModelRequestsBlocked",
    "ModelTimeout",
    "build_chat_model",
    "invoke_structured",
    "model_requests_allowed",
    "parse_json_answer",
    "stream_text",
]

ALLOW_MODEL_REQUESTS: bool = True

T = TypeVar("T", bound=BaseModel)

_TEMPERATURE = 0.7
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class ModelRequestsBlocked(CopilotError):
    """A model call was attempted while `ALLOW_MODEL_REQUESTS` is off (as it is under tests)."""


class ModelTimeout(UpstreamError):
    """The model server did not answer within the configured timeout."""


class MalformedAnswerError(UpstreamError):
    """The model answered, but not with JSON of the expected shape."""


def build_chat_model(
    settings: Settings, *, answer_schema: Mapping[str, Any] | None = None
) -> BaseChatModel | None:
    """A ChatOpenAI client for the configured OpenAI-compatible server, or None when none is configured.

    Retries are off: a draft is interactive, and the script drafter is a better answer than a second wait.
    `answer_schema` is the JSON schema sent in `json_schema` output mode (ignored in the others).
    """
    if not settings.llm_configured:
        return None
    from langchain_openai import ChatOpenAI  # imported lazily: only deployments with a model pay for it

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    return ChatOpenAI(
        model=settings.llm_model or "",
        base_url=settings.llm_base_url,
        # Local servers ignore the key but the client insists on one.
        api_key=pydantic.SecretStr(key or "not-needed"),
        timeout=settings.llm_timeout_s,
        max_retries=0,
        temperature=_TEMPERATURE,
        model_kwargs=_response_format(settings.llm_output_mode, answer_schema),
    )


def _response_format(mode: str, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    if mode == "json_schema" and schema is not None:
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "answer", "strict": True, "schema": dict(schema)}}}
    return {}


@contextmanager
def model_requests_allowed(flag: bool) -> Iterator[None]:
    """Set `ALLOW_MODEL_REQUESTS` for the duration of the block, then restore it."""
    global ALLOW_MODEL_REQUESTS
    previous = ALLOW_MODEL_REQUESTS
    ALLOW_MODEL_REQUESTS = flag
    try:
        yield
    finally:
        ALLOW_MODEL_REQUESTS = previous


def invoke_structured(model: BaseChatModel, messages: Sequence[BaseMessage], schema: type[T]) -> T:
    """Send `messages` and validate the JSON answer as `schema`.

    Raises ModelRequestsBlocked when requests are switched off, ModelTimeout on a timeout,
    UpstreamError on any other transport or HTTP failure, and MalformedAnswerError when the answer
    is not JSON or not of the schema's shape. Error messages are short and safe to show an operator.
    """
    if not ALLOW_MODEL_REQUESTS:
        raise ModelRequestsBlocked("model requests are switched off (copilot.llm.client.ALLOW_MODEL_REQUESTS)")
    try:
        answer = model.invoke(list(messages))
    except _TRANSPORT_ERRORS as exc:
        raise _upstream_error(model, exc) from exc
    return parse_json_answer(str(answer.text), schema)


def stream_text(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    *,
    deadline_s: float,
    cancelled: threading.Event | None = None,
) -> Generator[str, None, None]:
    """The model's answer as it arrives, one text chunk at a time.

    Stops quietly when `cancelled` is set (the HTTP stream to the model is closed, so a local server
    stops generating), raises ModelTimeout when the whole answer takes longer than `deadline_s`
    (the client's own timeout still bounds each wait for the next chunk), and otherwise raises as
    `invoke_structured` does.
    """
    if not ALLOW_MODEL_REQUESTS:
        raise ModelRequestsBlocked("model requests are switched off (copilot.llm.client.ALLOW_MODEL_REQUESTS)")
    started = time.monotonic()  # elapsed time of one request, not a date: no clock seam needed
    chunks = model.stream(list(messages))
    try:
        while True:
            if cancelled is not None and cancelled.is_set():
                return
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except _TRANSPORT_ERRORS as exc:
                raise _upstream_error(model, exc) from exc
            text = str(chunk.text)
            if text:
                yield text
            if time.monotonic() - started > deadline_s:
                raise ModelTimeout(f"llm answer not finished after {deadline_s:.0f}s")
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def parse_json_answer(text: str, schema: type[T]) -> T:
    """The model's text as `schema`, tolerating code fences and a `<think>` preamble."""
    data = _load_json(text)
    try:
        return schema.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise MalformedAnswerError(
            f"llm answered JSON of the wrong shape: {where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from exc


def _load_json(text: str) -> Any:
    cleaned = _FENCE.sub("", _THINK.sub("", text).strip()).strip()
    if not cleaned:
        raise MalformedAnswerError("llm answered malformed JSON: empty answer")
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError:
        pass
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(cleaned[start : end + 1])
        except json.JSONDecodeError:
            pass
    # The answer itself is not quoted: it may carry customer data and this message is stored.
    raise MalformedAnswerError(f"llm answered malformed JSON ({len(cleaned)} characters, no JSON object)")


# What a request can raise besides a model error: the client's own errors, and ValueError (a JSONDecodeError or a
# validation error) when the server sends a body or a stream event that is not the JSON the protocol promises.
_TRANSPORT_ERRORS = (openai.APIError, ModelError, httpx.HTTPError, ValueError)


def _upstream_error(model: BaseChatModel, exc: BaseException) -> UpstreamError:
    """The short, operator-safe error a failed model request is reported as."""
    if isinstance(exc, (openai.APITimeoutError, ModelTimeoutError, httpx.TimeoutException)):
        return ModelTimeout(f"llm timeout after {_timeout_of(model)}")
    if isinstance(exc, openai.APIStatusError):
        return UpstreamError(f"llm request failed: HTTP {exc.status_code}")
    if isinstance(exc, ValueError):
        return MalformedAnswerError(f"llm server sent malformed data: {type(exc).__name__}")
    return UpstreamError(f"llm request failed: {type(exc).__name__}")


def _timeout_of(model: BaseChatModel) -> str:
    timeout = getattr(model, "request_timeout", None)
    return f"{float(timeout):.1f}s" if isinstance(timeout, (int, float)) else "the configured timeout"
