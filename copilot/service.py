"""`Copilot`: the composition root. It wires the components from settings, and only it does.

The suggest path is one pass: profile and recent turns → stage → hybrid retrieval → rerank →
draft N script candidates → compliance on each → intent → persist → stream them; then, when an LLM is
configured, each LLM candidate as soon as the model has written it, checked (compliance, the fact
check, echoed instructions) and stored → done. `suggest` is that same stream read to the end, so a
suggestion is stored the same way whichever route asked for it. Models and indexes are built once,
when the Copilot is built; nothing on the request path loads a model or reads a file (the compliance
review's model is trained or loaded in the background from then on; a text that needs it first waits).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from copilot.approvals.items import create_for_candidates
from copilot.clock import Clock, as_utc, utcnow
from copilot.compliance import ComplianceChecker, ComplianceResult, Flag, combine, semantic
from copilot.compliance.frequency import FrequencyGuard, SendKind
from copilot.compliance.llm_check import LLMComplianceCheck
from copilot.compliance.pii import mask_pii
from copilot.compliance.result import Severity, as_customer_message
from copilot.compliance.review import EmbeddingReview, reads_meaning
from copilot.compliance.tenants import TenantCompliance
from copilot.config import Settings, apply_offline_defaults
from copilot.conversation.catalogue import LibraryCatalogue
from copilot.conversation.message_intents import MessageClassifier, Prediction
from copilot.conversation.purchase_intent import IntentResult, score_intent
from copilot.conversation.query import build_query
from copilot.conversation.scope import MessageScope, answers_staff_question, judge_scope
from copilot.conversation.stage_library import LibraryStages
from copilot.conversation.stage_vote import LLMStageVote
from copilot.conversation.stages import StageResult, StageSignals, Wording, detect_stage
from copilot.conversation.turns import Turn, answered_staff_text, last_customer_text
from copilot.drafting import factcheck, injection
from copilot.drafting.evidence import evidence_for
from copilot.drafting.llm_drafter import ANSWER_SCHEMA, LLMDrafter
from copilot.drafting.rerank import Reranker
from copilot.drafting.script import ScriptDrafter
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, Drafter, DraftOutcome
from copilot.embedding.embedders import Embedder, build_embedder
from copilot.errors import ConflictError, NotFoundError
from copilot.knowledge.loader import load_library
from copilot.knowledge.schema import CustomerProfile, Stage
from copilot.llm.client import build_chat_model
from copilot.llm.prompts import load_prompt
from copilot.llm.tokens import build_token_counter, seed_tiktoken_cache
from copilot.persistence.engine import make_engine
from copilot.persistence.ingest import IngestReport, Progress, ingest_library
from copilot.persistence.repository import Repository
from copilot.persistence.schema import require_current
from copilot.persistence.tables.conversations import CandidateRow, FlagRow, SuggestionRow
from copilot.retrieval.filters import Filters
from copilot.retrieval.hybrid import Hit, HybridRetriever, dense_outages
from copilot.retrieval.lexical import warm_up
from copilot.retrieval.vectorstore import ChromaStore
from copilot.sends import SendGate
from copilot.suggestion import (
    AnalysisOut,
    CancelledOut,
    CandidateOut,
    CitationOut,
    ComplianceOut,
    IntentOut,
    MessageScopeOut,
    PromptRef,
    StageOut,
    StartedOut,
    SuggestionEvent,
    SuggestionOut,
    SuggestRequest,
    flags_out,
)

__all__ = ["Copilot", "build_embedder"]

@dataclass(frozen=True)
class _Analysis:
    turns: tuple[Turn, ...]
    profile: CustomerProfile | None
    stage: StageResult
    intent: IntentResult
    customer_check: ComplianceResult
    query: str  # what retrieval looks for, for every search this request makes
    scope: MessageScope | None = None  # the latest customer message against the tenant's intents


class Copilot:
    def __init__(
        self,
        *,
        engine: Engine,
        embedder: Embedder,
        store: ChromaStore,
        compliance: ComplianceChecker,
        tenant_compliance: TenantCompliance | None = None,
        drafter: Drafter | None = None,
        clock: Clock = utcnow,
        default_candidates: int = 3,
        max_messages: int = 50,
        compliance_tuned: bool = False,
    ) -> None:
        self.engine = engine
        self.embedder = embedder
        self.store = store
        self.compliance = compliance
        self.tenant_compliance = tenant_compliance or TenantCompliance(compliance)
        self.llm_check: LLMComplianceCheck | None = None
        # The sentence embedder's second look at texts the n-gram classifiers leave just below a threshold: here,
        # where one text at a time is judged, not in the bulk checker (quality inspection).
        # With `compliance_tuned`, also the third look: the embedder's top layers fine-tuned (`tuned.py`).
        self.compliance_review = (EmbeddingReview(embedder, tuned=compliance_tuned) if reads_meaning(embedder)
                                  else None)
        if self.compliance_review is not None and compliance.semantic is not None:
            self.compliance_review.warm(compliance.semantic)  # trained once per process, or loaded from the cache
        # The pinyin reader of the rules' words and the word dictionary short list terms are read against, which the
        # first text with pinyin or with such a term would otherwise wait a second for.
        # A daemon: it only reads the rules, and a process may exit before it is done.
        threading.Thread(target=compliance.warm, name="compliance-warm", daemon=True).start()
        self.frequency = FrequencyGuard(engine, cap_for=self.tenant_compliance.proactive_daily_cap)
        self.repo = Repository(engine)
        self._classifiers: dict[str, MessageClassifier] = {}
        self._classifier_lock = threading.Lock()
        self._stage_libraries: dict[str, LibraryStages] = {}
        self._catalogues: dict[str, LibraryCatalogue] = {}  # per tenant: products and services, for the stage
        self.stage_vote: LLMStageVote | None = None  # set when an LLM is configured
        self.retriever = HybridRetriever(store=store)
        self.reranker = Reranker(embedder)
        self.script_drafter = ScriptDrafter(self.reranker, vectors=self.retriever.vectors)
        self.drafter: Drafter = drafter or self.script_drafter  # the drafts shown at once
        self.llm_drafter: LLMDrafter | None = None  # streamed after them, when a model is configured
        self._inflight: dict[tuple[str, str, str], threading.Event] = {}
        self._product_titles: dict[str, list[str]] = {}  # per tenant, for the fact check; reset on ingest
        self._inflight_lock = threading.Lock()
        self.clock = clock
        # The send gate judges by this Copilot's clock and counts in its one frequency guard.
        self.sends = SendGate(engine, check=self.check, guard=self.frequency, clock=lambda: self.clock())
        self.default_candidates = default_candidates
        self.max_messages = max_messages
        require_current(engine)  # tables come from `copilot db upgrade`, never from here
        warm_up()
        self._library_versions: dict[str, int] = {}
        self._reload_lock = threading.Lock()
        versions = self.repo.library_versions()
        for tenant in self.repo.tenants():
            self._load_library(tenant, versions.get(tenant, 0))

    @classmethod
    def from_settings(cls, settings: Settings, *, embedder: Embedder | None = None) -> Copilot:
        apply_offline_defaults(settings)
        seed_tiktoken_cache(settings.tiktoken_cache_dir)
        embedder = embedder or build_embedder(settings)
        store = ChromaStore(embedder, settings.chroma_dir, url=settings.chroma_url)
        semantic.use_cache_dir(settings.models_dir / "compliance")  # the trained n-gram model, outside git
        compliance = ComplianceChecker(packs=settings.compliance_packs, lexicon_dir=settings.lexicon_dir)
        copilot = cls(
            engine=make_engine(settings.sqlalchemy_url),
            embedder=embedder,
            store=store,
            compliance=compliance,
            tenant_compliance=TenantCompliance(compliance, lexicon_dir=settings.lexicon_dir),
            default_candidates=settings.candidates,
            max_messages=settings.max_messages,
            compliance_tuned=settings.compliance_tuned,
        )
        copilot.attach_llm(settings)
        return copilot

    def attach_llm(self, settings: Settings) -> None:
        """Wire the LLM drafter (and the optional LLM compliance review) the settings configure, if any."""
        model = build_chat_model(settings, answer_schema=ANSWER_SCHEMA) if settings.llm_configured else None
        if model is None:
            return
        self.llm_drafter = LLMDrafter(
            model=model, prompt=load_prompt("draft_replies"), fallback=self.script_drafter,
            token_counter=build_token_counter(settings), mask_pii=settings.llm_mask_pii,
            deadline_s=settings.llm_deadline_s,
        )
        self.llm_check = LLMComplianceCheck(model, load_prompt("compliance_check"))
        if settings.llm_stage_vote:
            # The stage vote asks for its own small JSON answer, so it gets a client without the drafts' schema.
            self.stage_vote = LLMStageVote(
                build_chat_model(settings) or model, load_prompt("stage_vote"),
                mask=(lambda text: mask_pii(text).text) if settings.llm_mask_pii else None,
            )

    # ---- library -----------------------------------------------------------------------------
    def ingest(self, path: Path, *, tenant: str, progress: Progress | None = None) -> IngestReport:
        library = load_library(path)  # raises LibraryError before anything is written
        report = ingest_library(library, tenant=tenant, engine=self.engine, store=self.store, progress=progress)
        self.repo.set_library_path(tenant, path)
        # Every other process sees the version move and reloads the tenant (`refresh_libraries`).
        self._load_library(tenant, self.repo.bump_library_version(tenant))
        return report

    def _load_tenant(self, tenant: str) -> None:
        """The tenant's in-memory catalogue and the stage index of its scripts' triggers."""
        docs = self.repo.knowledge_docs(tenant)
        self.retriever.load(tenant, docs)
        self._stage_libraries[tenant] = LibraryStages.from_scripts(
            (d.stages, d.triggers) for d in docs if d.kind == "script"
        )
        self._catalogues[tenant] = LibraryCatalogue.from_content(
            (d.content_kind, d.title, d.tags, d.stages) for d in docs if d.kind == "content"
        )

    def refresh_libraries(self) -> list[str]:
        """Reload every tenant whose library version moved since this process loaded it (an ingest by
        another process or host); returns those tenants. API processes and workers call it every second."""
        changed = [tenant for tenant, version in self.repo.library_versions().items()
                   if self._library_versions.get(tenant) != version]
        for tenant in changed:
            self._load_library(tenant, self.repo.library_versions().get(tenant, 0))
        return changed

    def library_version(self, tenant: str) -> int | None:
        """The version of the tenant's library this process serves; None before it loaded one."""
        return self._library_versions.get(tenant)

    def _load_library(self, tenant: str, version: int) -> None:
        """Build the tenant's keyword catalogue and compliance checker aside and swap each in whole, so a
        request sees the old library or the new one; classifiers refit from the new examples on next use."""
        with self._reload_lock:
            self._load_tenant(tenant)
            library = self.repo.library_path(tenant)
            if library is not None and library.is_dir():
                self.tenant_compliance.register(tenant, library)
            self._product_titles.pop(tenant, None)
            with self._classifier_lock:
                self._classifiers.pop(tenant, None)
            self._library_versions[tenant] = version

    def check(self, tenant: str, text: str, *, sales: bool = True) -> ComplianceResult:
        """The tenant's rules, then (when the tenant asks for it and an LLM is configured) the LLM review.

        `sales`: the text is one staff send to a customer (a draft, an auto-reply, an edited approval), so it is read
        as sales talk; pass False for anything else (a customer's words, prose)."""
        result = self.tenant_compliance.for_tenant(tenant).check(text, review=self.compliance_review, sales=sales)
        config = self.tenant_compliance.config(tenant)
        if self.llm_check is not None and config is not None and config.llm_check:
            result = self.llm_check.review(text, result)
        return result

    def classify(self, tenant: str, texts: Sequence[str]) -> list[Prediction]:
        """Label customer messages with the tenant's intents (`intents.yaml`), `oos` when none fits."""
        with self._classifier_lock:
            classifier = self._classifiers.get(tenant)
            if classifier is None:
                catalogue = self.repo.intents(tenant)
                if catalogue is None:
                    raise NotFoundError(f"tenant {tenant!r} defines no message intents; add intents.yaml to its library")
                classifier = MessageClassifier(self.embedder).fit(catalogue.training_examples())
                self._classifiers[tenant] = classifier
        return classifier.predict(list(texts))

    def search(self, tenant: str, query: str, *, filters: Filters, k: int = 10) -> list[Hit]:
        return self.retriever.search(tenant, query, filters=filters, k=k)

    # ---- pipeline ----------------------------------------------------------------------------
    def analyze(self, tenant: str, request: SuggestRequest) -> AnalysisOut:
        analysis = self._analyze(tenant, request)
        return AnalysisOut(
            stage=StageOut.of(analysis.stage),
            intent=IntentOut.of(analysis.intent),
            customer_message_flags=flags_out(analysis.customer_check),
            customer_message_risk=analysis.customer_check.risk,
            message_scope=MessageScopeOut.of(analysis.scope),
        )

    def suggest(self, tenant: str, request: SuggestRequest, *, llm: bool = True) -> SuggestionOut:
        """The whole suggestion at once: `suggest_stream` read to its end (with `llm` false, only what the
        immediate drafter wrote: the script drafter's drafts in production, no LLM drafts)."""
        for event in self.suggest_stream(tenant, request, llm=llm):
            if isinstance(event.data, SuggestionOut):
                return event.data
        raise ConflictError("the suggestion stopped before it was done")  # only a cancelled stream stops early

    def suggest_stream(
        self,
        tenant: str,
        request: SuggestRequest,
        *,
        cancelled: threading.Event | None = None,
        supersede: bool = False,
        llm: bool = True,
    ) -> Iterator[SuggestionEvent]:
        """`_suggest_stream`, and when the vector store could not be reached for it, the finished suggestion
        says so in `retrieval_note` (its candidates then come from keyword retrieval alone)."""
        inner = self._suggest_stream(tenant, request, cancelled=cancelled, supersede=supersede, llm=llm)
        skipped: list[str] = []
        while True:
            with dense_outages() as outages:  # the searches this step makes report into it
                try:
                    event = next(inner)
                except StopIteration:
                    return
            skipped += [o for o in outages if o not in skipped]
            if skipped and isinstance(event.data, SuggestionOut):
                event.data.retrieval_note = ("向量检索暂不可用，本次候选仅基于关键词检索 (dense retrieval skipped: "
                                             + "; ".join(skipped) + ")")
            yield event

    def _suggest_stream(
        self,
        tenant: str,
        request: SuggestRequest,
        *,
        cancelled: threading.Event | None = None,
        supersede: bool = False,
        llm: bool = True,
    ) -> Iterator[SuggestionEvent]:
        """The suggestion as it is made: analysis and script drafts at once, LLM drafts one by one, done.

        Every candidate is checked and stored before it is handed out. Setting `cancelled` (the client
        hung up) ends the stream early; with `supersede`, so does a newer superseding stream for the same
        customer and staff member (the customer wrote again). The stored suggestion then holds what
        was handed out, and its fallback reason says why it stopped.
        """
        started = time.perf_counter()
        now = self.clock()
        analysis = self._analyze(tenant, request)
        n = request.n or self.default_candidates
        persona = self.repo.persona(tenant)
        stage = analysis.stage.name
        scripts, content = self._evidence(tenant, analysis, stage)
        context = DraftContext(
            tenant=tenant, turns=analysis.turns, profile=analysis.profile, persona=persona, stage=stage,
            scripts=scripts, content=content, n=n, now=now,
        )
        if analysis.scope is not None and analysis.scope.out_of_scope:
            # Not about the shop: a sales script or an LLM draft would answer something nobody asked.
            outcome = DraftOutcome(candidates=(), drafter="script", fallback_reason=(
                f"{analysis.scope.reason}：不生成销售回复，请顾问亲自回应 (out of scope: no drafts)"))
        else:
            outcome = self.drafter.draft(context)
            if len(outcome.candidates) < n:
                outcome = self._top_up(outcome, context, tenant, analysis)
        limit = self._frequency_flag(tenant, request, analysis)
        checks = [self._checked(tenant, c, context, limit) for c in outcome.candidates]
        stop = self._claim(tenant, request, cancelled, supersede)
        try:
            suggestion_id = self._open(tenant, request, analysis, outcome, time.perf_counter() - started)
            out = self._store(tenant, suggestion_id, 0, list(zip(outcome.candidates, checks, strict=True)), outcome)
            create_for_candidates(self.engine, tenant, self._result(suggestion_id, analysis, out, None), now=now)
            result = self._result(suggestion_id, analysis, [], None)
            yield SuggestionEvent("analysis", StartedOut(
                suggestion_id=suggestion_id, stage=result.stage, intent=result.intent,
                customer_message_flags=result.customer_message_flags,
                customer_message_risk=result.customer_message_risk, message_scope=result.message_scope,
            ))
            for candidate in out:
                yield SuggestionEvent("candidate", candidate)
            note = outcome.fallback_reason
            out_of_scope = analysis.scope is not None and analysis.scope.out_of_scope
            if self.llm_drafter is not None and llm and not out_of_scope and not stop.is_set():
                stream = self.llm_drafter.stream(context, exclude={c.text for c in outcome.candidates}, cancelled=stop)
                for drafted in stream:
                    check = self._checked(tenant, drafted, context, limit)
                    [added] = self._store(tenant, suggestion_id, len(out), [(drafted, check)], stream.outcome)
                    out.append(added)
                    create_for_candidates(self.engine, tenant, self._result(suggestion_id, analysis, [added], None),
                                          now=now)
                    yield SuggestionEvent("candidate", added)
                note = stream.outcome.fallback_reason
                self._close(suggestion_id, stream.outcome, note, time.perf_counter() - started)
            else:
                self._close(suggestion_id, outcome, note, time.perf_counter() - started)
            if stop.is_set():
                yield SuggestionEvent("cancelled", CancelledOut(
                    suggestion_id=suggestion_id, reason=note or "cancelled before the llm drafts"))
                return
            yield SuggestionEvent("done", self._result(suggestion_id, analysis, out, note))
        finally:
            self._release(tenant, request, stop)

    @staticmethod
    def _result(
        suggestion_id: str, analysis: _Analysis, candidates: list[CandidateOut], note: str | None
    ) -> SuggestionOut:
        return SuggestionOut(
            suggestion_id=suggestion_id, stage=StageOut.of(analysis.stage), intent=IntentOut.of(analysis.intent),
            candidates=list(candidates), customer_message_flags=flags_out(analysis.customer_check),
            customer_message_risk=analysis.customer_check.risk, drafter_note=note,
            message_scope=MessageScopeOut.of(analysis.scope),
        )

    def _claim(
        self, tenant: str, request: SuggestRequest, cancelled: threading.Event | None, supersede: bool
    ) -> threading.Event:
        """This request's stop signal; a newer superseding stream for the conversation sets the older one's."""
        stop = cancelled or threading.Event()
        if supersede and request.customer_id and request.staff_id:
            key = (tenant, request.customer_id, request.staff_id)
            with self._inflight_lock:
                older = self._inflight.get(key)
                if older is not None:
                    older.set()
                self._inflight[key] = stop
        return stop

    def _release(self, tenant: str, request: SuggestRequest, stop: threading.Event) -> None:
        if request.customer_id and request.staff_id:
            key = (tenant, request.customer_id, request.staff_id)
            with self._inflight_lock:
                if self._inflight.get(key) is stop:
                    del self._inflight[key]

    def _checked(
        self, tenant: str, candidate: DraftCandidate, context: DraftContext, limit: Flag | None
    ) -> ComplianceResult:
        """Compliance on one draft, plus the frequency limit and, for LLM drafts, the model-specific checks."""
        check = self.check(tenant, candidate.text)
        extra = [limit] if limit is not None else []
        if candidate.drafter == "llm":
            extra += self._llm_flags(tenant, candidate, context)
        return combine(check, extra) if extra else check

    def _llm_flags(self, tenant: str, candidate: DraftCandidate, context: DraftContext) -> list[Flag]:
        """An LLM draft's unsupported claims and obeyed injections, as flags a reviewer must clear."""
        return self._injection_flags(candidate.text, context) + [
            Flag(
                category="unsupported_claim", rule_id=f"factcheck.{u.claim.kind}", severity=Severity.review,
                span=u.claim.span, matched=u.claim.text,
                message=f"「{u.claim.text}」找不到出处：在{'、'.join(u.looked_in)}里都没有找到「{u.looked_for}」",
                suggestion="核实无误再发，或删掉这一处",
            )
            for u in self.fact_check(tenant, candidate.text, candidate.citations, turns=context.turns,
                                     profile=context.profile, now=context.now)
        ]

    def _injection_flags(self, text: str, context: DraftContext) -> list[Flag]:
        what = {"echo": "照着资料里的指令写了", "leak": "泄露了提示词或规则", "role": "换了身份说话"}
        prompt = self.llm_drafter.prompt.system if self.llm_drafter is not None else ""
        return [
            Flag(
                category="prompt_injection", rule_id=f"injection.{e.rule}", severity=Severity.review, span=e.span,
                matched=e.phrase, message=f"回复{what[e.rule]}：「{e.phrase}」（来自{e.source}）",
                suggestion="这条回复可能被客户消息或资料里的指令带偏了，请人工确认后再发",
            )
            for e in injection.find_echoes(text, untrusted_texts(context), prompt_text=re.sub(r"\{\w+\}", "\n", prompt))
        ]

    def fact_check(
        self, tenant: str, text: str, citations: Sequence[Citation], *, turns: Sequence[Turn],
        profile: CustomerProfile | None, now: dt.datetime,
    ) -> list[factcheck.Unsupported]:
        """The claims of a draft that neither its citations nor the conversation support."""
        persona = self.repo.persona(tenant)
        evidence = evidence_for(
            citations, turns=turns, profile=profile, persona=persona, today=now.date(),
            doc=lambda kind, ident: self.retriever.get(tenant, f"{kind}:{ident}"),
            content_extra=lambda ident: self._content_facts(tenant, ident),
        )
        return factcheck.check(text, evidence, self._lexicon(tenant, persona.brand))

    def _content_facts(self, tenant: str, content_id: str) -> str:
        try:
            data = self.repo.content(tenant, content_id).data
        except NotFoundError:
            return ""
        parts = [f"售价{data['price']:g}元"] if isinstance(data.get("price"), int | float) else []
        for key in ("valid_from", "valid_to"):
            if data.get(key):
                day = dt.date.fromisoformat(str(data[key])[:10])
                parts.append(f"{day.isoformat()} {day.month}月{day.day}日")
        return " ".join(parts)

    def _lexicon(self, tenant: str, brand: str) -> factcheck.Lexicon:
        titles = self._product_titles.get(tenant)
        if titles is None:
            titles = [d.title for d in self.repo.knowledge_docs(tenant)
                      if d.kind == "content" and d.content_kind == "product"]
            self._product_titles[tenant] = titles
        return factcheck.Lexicon.from_library(titles, brand)

    def _frequency_flag(self, tenant: str, request: SuggestRequest, analysis: _Analysis) -> Flag | None:
        """Would sending one more message now break a platform limit or the tenant's daily cap?"""
        if analysis.profile is None or not request.staff_id:
            return None
        kind: SendKind = "reply" if any(t.role == "customer" for t in analysis.turns) else "proactive"
        return self.frequency.check(tenant, request.staff_id, analysis.profile.id, "external", kind, self.clock())

    def _analyze(self, tenant: str, request: SuggestRequest) -> _Analysis:
        profile = self.repo.customer(tenant, request.customer_id) if request.customer_id else None
        turns = tuple(Turn(m.role, m.text, m.ts) for m in request.messages[-self.max_messages :])
        history = turns
        if not turns and profile is not None:
            stored = self.repo.recent_turns(tenant, profile.id)
            history = tuple(stored) or tuple(Turn(t.role, t.text, t.ts) for t in profile.chat[-10:])
        last_stage = None
        if profile is not None and request.staff_id:
            last_stage = self.repo.last_stage(tenant, profile.id, request.staff_id)
        query = build_query(turns, profile)
        now = self.clock()
        # The offline detector always decides; a configured LLM adds one vote to it.
        vote = self.stage_vote.vote(turns) if self.stage_vote is not None and turns else None
        signals = self.stage_signals(tenant, turns)
        stage = detect_stage(turns, profile, today=now.date(), last_stage=last_stage, signals=signals,
                             llm_vote=vote)
        if request.stage is not None and request.stage != stage.name.value:
            stage = StageResult(
                name=Stage(request.stage), confidence=1.0,
                reasons=(f"调用方指定阶段 {request.stage}（检测结果为 {stage.name.value}）",), scores=stage.scores,
            )
        intent = score_intent(history, profile, now=now)
        customer_text = next((t.text for t in reversed(turns) if t.role == "customer"), "")
        checker = self.tenant_compliance.for_tenant(tenant)
        # What the customer wrote is flagged to the staff member as warnings; it never holds their reply.
        check = as_customer_message(checker.check(customer_text, review=self.compliance_review)) if customer_text else ComplianceResult(risk="none", flags=())
        scope = self._scope(tenant, turns, signals)
        return _Analysis(turns, profile, stage, intent, check, query, scope)

    def _scope(self, tenant: str, turns: Sequence[Turn], signals: StageSignals) -> MessageScope | None:
        """The latest message, when the customer wrote it, against the tenant's intents (none defined: None)."""
        if not turns or turns[-1].role != "customer" or not turns[-1].text.strip():
            return None
        try:
            [prediction] = self.classify(tenant, [turns[-1].text])
        except NotFoundError:
            return None
        return judge_scope(turns[-1].text, prediction, signals.library, answering=answers_staff_question(turns))

    def stage_signals(self, tenant: str, turns: Sequence[Turn]) -> StageSignals:
        """The tenant's library on this turn: its triggers, and the stages of the scripts closest to the
        customer's latest words and to the staff message they answer (the step staff are on)."""
        if not turns:
            return StageSignals()
        latest = last_customer_text(turns)
        answered = next((t.text for t in reversed(turns) if t.role == "staff"), "")
        return StageSignals(
            library=self._stage_libraries.get(tenant),
            customer_vote=self._library_vote(tenant, latest) if latest.strip() else None,
            staff_vote=self._library_vote(tenant, answered) if answered.strip() else None,
            catalogue=self._catalogues.get(tenant),
            wording=self.stage_wording(turns),
        )

    def stage_wording(self, turns: Sequence[Turn]) -> Wording:
        """The embedder's vectors of the customer's latest words and of the staff message they answer (the
        retriever keeps the last few query vectors, so the library votes above have mostly computed them)."""
        latest, answered = last_customer_text(turns), answered_staff_text(turns)
        return Wording(
            embedder=self.retriever.store.embedder.name,
            customer=self.retriever.query_vector(latest) if latest.strip() else None,
            staff=self.retriever.query_vector(answered) if answered.strip() else None,
        )

    def _library_vote(self, tenant: str, query: str) -> dict[str, float]:
        """How the best-matching scripts spread over stages: the library's own opinion of this text."""
        hits = self.retriever.search(tenant, query, filters=Filters(kinds=("script",)), k=10)
        vote: dict[str, float] = {}
        for hit in hits:
            for stage in hit.doc.stages:
                vote[stage] = vote.get(stage, 0.0) + hit.score
        return vote

    def _evidence(self, tenant: str, analysis: _Analysis, stage: Stage) -> tuple[tuple[Hit, ...], tuple[Hit, ...]]:
        profile, query = analysis.profile, analysis.query
        segment = profile.segment if profile else None
        has_orders = bool(profile.orders) if profile else None
        scripts = self.retriever.search(tenant, query or stage.value, k=24, filters=Filters(
            kinds=("script",), stage=stage.value, segment=segment, today=self.clock().date(), has_orders=has_orders,
        ))
        content = self.retriever.search(
            tenant, query or stage.value, filters=Filters(kinds=("content",), stage=stage.value, segment=segment), k=5
        )
        return tuple(scripts), tuple(content)

    def _top_up(self, outcome: DraftOutcome, context: DraftContext, tenant: str, analysis: _Analysis) -> DraftOutcome:
        """Too few candidates (narrow segment, unfillable variables): widen to the stage's whole library."""
        query = analysis.query or context.stage.value
        profile = analysis.profile
        wider = self.retriever.search(tenant, query, k=80, filters=Filters(
            kinds=("script",), stage=context.stage.value, today=context.now.date(),
            has_orders=bool(profile.orders) if profile else None,
        ))
        extra = self.script_drafter.draft(
            DraftContext(**{**context.__dict__, "scripts": tuple(wider), "n": context.n * 2})
        )
        have = {c.text for c in outcome.candidates}
        merged = list(outcome.candidates)
        for candidate in extra.candidates:
            if len(merged) >= context.n:
                break
            if candidate.text not in have:
                merged.append(candidate)
                have.add(candidate.text)
        return DraftOutcome(
            candidates=tuple(merged), drafter=outcome.drafter, prompt_name=outcome.prompt_name,
            prompt_version=outcome.prompt_version, fallback_reason=outcome.fallback_reason,
        )

    def _open(
        self, tenant: str, request: SuggestRequest, analysis: _Analysis, outcome: DraftOutcome, elapsed: float
    ) -> str:
        """Store the conversation turns and the suggestion row; its candidates follow as they are made."""
        with self.repo.unit_of_work() as session:
            conversation_id = None
            if analysis.profile is not None and request.staff_id:
                conversation = self.repo.conversation(session, tenant, analysis.profile.id, request.staff_id)
                conversation.last_stage = analysis.stage.name.value
                conversation.updated_at = utcnow()
                session.add(conversation)
                self.repo.store_messages(session, tenant, conversation.id, analysis.turns, now=self.clock())
                conversation_id = conversation.id
            row = SuggestionRow(
                tenant_id=tenant, conversation_id=conversation_id,
                customer_id=analysis.profile.id if analysis.profile else None, staff_id=request.staff_id,
                stage=analysis.stage.name.value, stage_confidence=analysis.stage.confidence,
                stage_reasons=list(analysis.stage.reasons), intent_score=analysis.intent.score,
                intent_level=analysis.intent.level,
                intent_factors=[f.__dict__ for f in analysis.intent.factors], drafter=outcome.drafter,
                prompt_name=outcome.prompt_name, prompt_version=outcome.prompt_version,
                fallback_reason=outcome.fallback_reason,
                rules_version=self.tenant_compliance.for_tenant(tenant).version,
                latency_ms=round(elapsed * 1000, 2), created_at=as_utc(self.clock()),
            )
            session.add(row)
            session.flush()
            for flag in analysis.customer_check.flags:
                session.add(_flag_row(tenant, row.id, None, flag))
            return row.id

    def _store(
        self,
        tenant: str,
        suggestion_id: str,
        first_rank: int,
        checked: list[tuple[DraftCandidate, ComplianceResult]],
        outcome: DraftOutcome,
    ) -> list[CandidateOut]:
        out: list[CandidateOut] = []
        with self.repo.unit_of_work() as session:
            for rank, (candidate, check) in enumerate(checked, start=first_rank):
                cand = CandidateRow(
                    tenant_id=tenant, suggestion_id=suggestion_id, rank=rank, text=candidate.text,
                    stage=candidate.stage.value, citations=[c.__dict__ for c in candidate.citations],
                    risk=check.risk, requires_approval=check.requires_approval, drafter=candidate.drafter,
                )
                session.add(cand)
                session.flush()
                for flag in check.flags:
                    session.add(_flag_row(tenant, suggestion_id, cand.id, flag))
                prompt = (
                    PromptRef(name=outcome.prompt_name, version=outcome.prompt_version)
                    if candidate.drafter == "llm" and outcome.prompt_name and outcome.prompt_version
                    else None
                )
                out.append(CandidateOut(
                    id=cand.id, text=candidate.text, stage=candidate.stage.value,
                    citations=[CitationOut(kind=c.kind, id=c.id, field=c.field) for c in candidate.citations],
                    compliance=ComplianceOut.of(check),
                    requires_approval=check.requires_approval, drafter=candidate.drafter, prompt=prompt,
                ))
        return out

    def _close(self, suggestion_id: str, outcome: DraftOutcome, note: str | None, elapsed: float) -> None:
        """Record which drafter and prompt finished the suggestion, why it fell back, and how long it took."""
        with self.repo.unit_of_work() as session:
            row = session.get(SuggestionRow, suggestion_id)
            if row is None:
                return
            if outcome.candidates or outcome.prompt_name:
                row.drafter = "llm" if any(c.drafter == "llm" for c in outcome.candidates) else row.drafter
                row.prompt_name = outcome.prompt_name or row.prompt_name
                row.prompt_version = outcome.prompt_version or row.prompt_version
            row.fallback_reason = note
            row.latency_ms = round(elapsed * 1000, 2)
            session.add(row)


def untrusted_texts(context: DraftContext) -> list[tuple[str, str]]:
    """Text the model saw that nobody on the brand's side wrote or vetted as an instruction: customer
    messages, profile fields and the retrieved library items."""
    texts = [("客户消息", t.text) for t in context.turns if t.role == "customer"]
    profile = context.profile
    if profile is not None:
        texts += [(f"画像 attributes.{k}", str(v)) for k, v in profile.attributes.items()]
        texts += [("画像 tags", " ".join(profile.all_tags))]
        texts += [("画像 behaviours", f"{b.target} {b.detail}") for b in profile.behaviours]
        texts += [("画像 coupons", " ".join(map(str, c.values()))) for c in profile.coupons]
    texts += [(f"内容 {h.doc.id}", f"{h.doc.title}。{h.doc.body}") for h in context.content]
    texts += [(f"话术 {h.doc.id}", h.doc.body) for h in context.scripts]
    return texts


def _flag_row(tenant: str, suggestion_id: str, candidate_id: str | None, flag: Flag) -> FlagRow:
    return FlagRow(
        tenant_id=tenant, suggestion_id=suggestion_id, candidate_id=candidate_id,
        category=flag.category, rule_id=flag.rule_id, severity=flag.severity.value,
        span_start=flag.span[0], span_end=flag.span[1], message=flag.message, suggestion=flag.suggestion,
    )
