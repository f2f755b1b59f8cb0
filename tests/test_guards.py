"""The suite's own guards: no network beyond loopback, no model call outside an explicit fake."""

from __future__ import annotations

import socket

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, SecretStr

from copilot.config import Settings
from copilot.llm import client as llm


def test_connecting_beyond_loopback_fails() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(RuntimeError, match="only loopback"):
            sock.connect(("93.184.216.34", 443))
    finally:
        sock.close()


class Answer(BaseModel):
    text: str


def test_a_real_model_call_outside_an_explicit_fake_fails() -> None:
    settings = Settings(llm_base_url="https://api.example.com/v1", llm_model="any", llm_api_key=SecretStr("k"))
    model = llm.build_chat_model(settings)
    assert model is not None
    with pytest.raises(llm.ModelRequestsBlocked):
        llm.invoke_structured(model, [HumanMessage("hi")], Answer)
