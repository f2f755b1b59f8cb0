"""The wx.agentConfig signature matches WeCom's documented algorithm and example."""

from __future__ import annotations

import hashlib

import pytest

from copilot.errors import ValidationError
from copilot.wecom.protocol.jssdk import agent_config_signature

# The example of WeCom's "JS-SDK 签名算法" page.
TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
NONCE = "Wm3WZYTPz0wzccnW"
TIMESTAMP = "1414587457"
URL = "http://mp.weixin.qq.com?params=value"


def expected(url: str) -> str:
    plain = f"jsapi_ticket={TICKET}&noncestr={NONCE}&timestamp={TIMESTAMP}&url={url}"
    return hashlib.sha1(plain.encode()).hexdigest()


def test_documented_example_signature() -> None:
    assert expected(URL) == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert agent_config_signature(TICKET, NONCE, TIMESTAMP, URL) == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def test_integer_timestamp_signs_like_its_string() -> None:
    assert agent_config_signature(TICKET, NONCE, int(TIMESTAMP), URL) == expected(URL)


def test_fragment_is_removed_but_the_query_is_kept_unescaped() -> None:
    page = "https://sidebar.example.com/app?customer=wm%20A&x=1"
    assert agent_config_signature(TICKET, NONCE, TIMESTAMP, page + "#/chat?tab=2") == expected(page)
    assert agent_config_signature(TICKET, NONCE, TIMESTAMP, page) == expected(page)


def test_missing_inputs_are_refused() -> None:
    with pytest.raises(ValidationError):
        agent_config_signature("", NONCE, TIMESTAMP, URL)
