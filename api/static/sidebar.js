// 聊天侧边栏: customer card, stage, intent, three drafts with citations and compliance marks, search.
// Drafts stream in (server-sent events): the script drafts at once, then each AI draft as the model
// finishes it, marked "AI 生成"; when the customer writes again the running stream is dropped and its
// late drafts are discarded.
// Inside WeCom (`window.wx` exists) the page signs the staff member in through WeCom OAuth by itself and
// drafts go into the chat input with sendChatMessage; elsewhere it takes an API key (kept for the tab),
// copies to the clipboard and the customer comes from a picker. Whatever is inserted or copied for a
// customer is first accepted by the send gate (POST /v1/sends); a held text shows 等待审批 until a
// supervisor decides. No framework, no build step.
"use strict";

(() => {
  const KEY_STORE = "copilot.apiKey";
  const TREND_STORE = "copilot.intentTrend.";
  const TREND_LENGTH = 12;
  const STAGE_NAMES = { icebreak: "破冰", discovery: "需求挖掘", recommend: "推荐", revisit: "回访" };
  const LEVEL_NAMES = { low: "低", medium: "中", high: "高" };
  const SEVERITY_NAMES = { warn: "提示", review: "需审批", block: "禁止发送" };
  const BEHAVIOUR_NAMES = {
    viewed: "浏览", view: "浏览", clicked: "点击", clicked_miniprogram: "打开小程序", coupon_claimed: "领券",
    added_to_cart: "加购",
    joined_event: "报名活动", purchased: "购买", shared: "分享", searched: "搜索", favorited: "收藏",
    live_watched: "看直播", signed_in: "签到", consulted: "咨询", refunded: "退款",
  };
  const ROLE_NAMES = { staff: "导购", supervisor: "主管", admin: "管理员", service: "服务" };
  const REJECT_REASONS = ["不符合当前话题", "语气不合适", "信息有误", "有合规顾虑", "其他"];

  const state = {
    key: "",
    me: null, // who is signed in (GET /v1/me)
    csrf: "", // the session's CSRF token, sent with every change
    pollMs: 4000,
    inWeCom: false,
    agentConfigured: false,
    customerId: "",
    profile: null,
    suggestion: null,
    basisKey: null, // the customer message the current drafts answer
    seq: 0,
    loading: false,
    stream: null, // {controller, basis}: the running suggestion stream and the message it answers
    editing: new Set(),
    used: new Set(),
    pollTimer: 0,
    customersLoaded: false,
    scenarios: new Set(),
    citationCache: new Map(),
    draft: null, // the draft an automation note linked to (?draft=)
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---- small DOM helpers (text only: never innerHTML with data) ------------------------------
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    return node;
  }

  function setStatus(message, kind = "info") {
    const node = $("status");
    node.textContent = message || "";
    node.className = `status ${kind}`;
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  const money = (value) => `¥${Number(value).toFixed(Number.isInteger(value) ? 0 : 2)}`;

  // ---- API -------------------------------------------------------------------------------------
  // A key (when the tab has one) or the session cookie; changes from a session carry its CSRF token.
  async function api(path, options = {}) {
    const headers = {};
    if (state.key) headers["X-API-Key"] = state.key;
    const init = { method: options.method || "GET", headers, credentials: "same-origin" };
    if (init.method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (options.stream) {
      headers.Accept = "text/event-stream";
      init.signal = options.signal;
    }
    const response = await fetch(path, init);
    if (options.stream && response.ok) return response;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.status === 401 && !options.quiet401) {
      if (state.key) {
        sessionStorage.removeItem(KEY_STORE);
        state.key = "";
        showKeyPanel("API Key 无效或已失效，请重新输入。");
      } else {
        state.me = null;
        showKeyPanel("登录已失效，请重新登录。");
      }
    }
    if (!response.ok && !(options.accept || []).includes(response.status)) {
      const detail = data && data.detail;
      const text = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : response.statusText;
      throw new ApiError(response.status, text);
    }
    return options.accept ? { status: response.status, data } : data;
  }

  // The server-sent events of a streamed answer, one {kind, data} at a time, as they arrive.
  async function* serverEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) yield { kind, data: JSON.parse(data.join("\n")) };
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  const enc = encodeURIComponent;

  async function sendFeedback(candidate, action, extra = {}) {
    if (!state.suggestion || !state.suggestion.candidates.some((c) => c.id === candidate.id)) return;
    try {
      await api("/v1/sidebar/feedback", {
        method: "POST",
        body: { suggestion_id: state.suggestion.suggestion_id, candidate_id: candidate.id, action, ...extra },
      });
    } catch (error) {
      setStatus(`反馈未保存：${error.message}`, "error");
    }
  }

  // ---- WeCom JS-SDK ----------------------------------------------------------------------------
  function loadWeComSdk() {
    if (window.wx || !/wxwork/i.test(navigator.userAgent)) return Promise.resolve();
    const meta = document.querySelector('meta[name="wecom-jssdk"]');
    if (!meta || !meta.content) return Promise.resolve();
    return new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = meta.content;
      script.onload = () => resolve();
      script.onerror = () => resolve();
      document.head.append(script);
    });
  }

  function hasWx() {
    return typeof window.wx === "object" && window.wx !== null && typeof window.wx.invoke === "function";
  }

  function withTimeout(promise, ms, fallback) {
    return Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(fallback), ms))]);
  }

  function wxOk(res, api) {
    const message = (res && (res.err_msg || res.errMsg)) || "";
    return message === `${api}:ok` || /:ok$/.test(message);
  }

  async function configureWeCom() {
    let signed;
    try {
      const url = location.href.split("#")[0];
      signed = await api(`/v1/sidebar/jsapi-signature?url=${enc(url)}`);
    } catch (error) {
      // 503 when WeCom is not configured: insertion still works through sendChatMessage.
      state.agentConfigured = false;
      return;
    }
    const configured = new Promise((resolve) => {
      try {
        window.wx.agentConfig({
          corpid: signed.corpid,
          agentid: signed.agentid,
          timestamp: signed.timestamp,
          nonceStr: signed.nonceStr,
          signature: signed.signature,
          jsApiList: ["getCurExternalContact", "sendChatMessage"],
          success: () => resolve(true),
          fail: () => resolve(false),
        });
      } catch (_) {
        resolve(false);
      }
    });
    state.agentConfigured = await withTimeout(configured, 8000, false);
  }

  function currentExternalContact() {
    const found = new Promise((resolve) => {
      try {
        window.wx.invoke("getCurExternalContact", {}, (res) => {
          resolve(wxOk(res, "getCurExternalContact") && res.userId ? String(res.userId) : "");
        });
      } catch (_) {
        resolve("");
      }
    });
    return withTimeout(found, 8000, "");
  }

  function sendChatMessage(text) {
    return new Promise((resolve, reject) => {
      try {
        window.wx.invoke("sendChatMessage", { msgtype: "text", text: { content: text } }, (res) => {
          if (wxOk(res, "sendChatMessage")) resolve();
          else reject(new Error((res && (res.err_msg || res.errMsg)) || "sendChatMessage 失败"));
        });
      } catch (error) {
        reject(error);
      }
    });
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return;
      } catch (_) {
        // fall through to the selection-based copy
      }
    }
    const area = h("textarea", { class: "sr-only", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw new Error("浏览器不允许复制，请手动选择文字复制");
  }

  // Ask the send gate for exactly `text`: {sent: text it accepted} or {held: the 409 answer}.
  async function gate(text, candidateId) {
    const body = { customer_id: state.customerId, text };
    if (candidateId) body.candidate_id = candidateId;
    const out = await api("/v1/sends", { method: "POST", body, accept: [409] });
    return out.status === 409 ? { held: out.data } : { sent: out.data.text };
  }

  // Follow an approval until it is decided; `onDecided(item)` runs once, unless the draft left the page.
  function watchApproval(approvalId, node, onDecided) {
    const poll = async () => {
      if (!node.isConnected) return;
      try {
        const item = await api(`/v1/approvals/${enc(approvalId)}`);
        if (item.status !== "pending") {
          onDecided(item);
          return;
        }
      } catch (_) {
        // a missed poll is retried
      }
      setTimeout(poll, state.pollMs);
    };
    setTimeout(poll, Math.min(state.pollMs, 1000));
  }

  // Put text into the chat (WeCom) or on the clipboard (browser); returns how it was delivered.
  async function deliver(text) {
    if (state.inWeCom) {
      await sendChatMessage(text);
      return "inserted";
    }
    await copyText(text);
    return "copied";
  }

  // ---- sign-in, API key and start-up -------------------------------------------------------------
  function signInUrl(params) {
    const next = new URLSearchParams(params);
    next.set("signin", "1"); // a second failed round shows an error instead of looping
    const query = new URLSearchParams({ next: `${location.pathname}?${next}` });
    if (params.get("tenant")) query.set("tenant", params.get("tenant"));
    return `/auth/wecom/login?${query}`;
  }

  function showKeyPanel(message) {
    stopPolling();
    $("key-panel").hidden = false;
    for (const id of ["picker-panel", "customer-card", "analysis", "drafts-panel", "search-panel"]) {
      $(id).hidden = true;
    }
    if (message) setStatus(message, "error");
    $("key-input").focus();
  }

  async function boot() {
    const params = new URLSearchParams(location.search);
    if (params.has("key")) {
      // Keys never travel in addresses (they end up in logs and history): drop it unread.
      params.delete("key");
      const query = params.toString();
      history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
    }
    $("signin-link").href = signInUrl(params);
    const poll = Number(params.get("poll"));
    if (poll > 0) state.pollMs = Math.min(Math.max(poll, 250), 60000);
    state.key = sessionStorage.getItem(KEY_STORE) || "";

    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("key-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY_STORE, value);
      state.key = value;
      $("key-input").value = "";
      setStatus("");
      whoAmI().then((ok) => (ok ? start(params.get("customer_id") || "", params) : null));
    });
    $("customer-select").addEventListener("change", (event) => {
      if (event.target.value) selectCustomer(event.target.value);
    });
    $("refresh").addEventListener("click", () => refresh(true));
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });

    await loadWeComSdk();
    state.inWeCom = hasWx();
    if (!(await whoAmI())) {
      if (state.inWeCom && !state.key && !params.get("signin")) {
        location.replace(signInUrl(params)); // WeCom OAuth, then back here signed in
        return;
      }
      renderEnv();
      showKeyPanel(params.get("signin") ? "企业微信登录没有成功，请重试或联系管理员。" : "");
      return;
    }
    await start(params.get("customer_id") || "", params);
  }

  // Who is calling: a session (from WeCom sign-in) or the tab's API key; false when neither works.
  async function whoAmI() {
    state.key = sessionStorage.getItem(KEY_STORE) || "";
    try {
      state.me = await api("/v1/me", { quiet401: true });
      state.csrf = state.me.csrf_token || "";
      return true;
    } catch (error) {
      if (error.status === 401 && state.key) {
        sessionStorage.removeItem(KEY_STORE);
        state.key = "";
        setStatus("API Key 无效或已失效，请重新输入。", "error");
      }
      state.me = null;
      return false;
    }
  }

  function renderEnv() {
    let label = "浏览器模式：复制后粘贴";
    if (state.inWeCom) label = state.agentConfigured ? "企业微信" : "企业微信（未签名：可插入，请手动选客户）";
    $("env").textContent = label;
    const who = state.me ? (state.me.staff_id ? `${state.me.name} · ${ROLE_NAMES[state.me.role] || state.me.role}`
      : `API Key · ${ROLE_NAMES[state.me.role] || state.me.role}`) : "";
    $("who").textContent = who;
    $("who").hidden = !who;
  }

  async function start(customerId, params) {
    $("key-panel").hidden = true;
    $("search-panel").hidden = false;
    if (state.inWeCom) await configureWeCom();
    if (!state.me) return; // the key or session was refused while signing
    renderEnv();
    let id = customerId;
    if (!id && state.inWeCom && state.agentConfigured) id = await currentExternalContact();
    if (!state.inWeCom || !state.agentConfigured || !id) await loadCustomers();
    if (!state.me) return;
    if (params && params.get("draft")) await loadNotifiedDraft(params.get("draft"));
    schedulePoll(); // from now on: a customer who writes while the first suggestion streams is noticed
    if (id) await selectCustomer(id);
    else {
      setStatus("请选择一位客户。");
      await loadRevisits(new URLSearchParams(location.search));
    }
  }

  // ---- the day's revisit queue, shown while no chat is open -------------------------------------
  async function loadRevisits(params) {
    try {
      const staff = await api("/v1/staff");
      if (!staff.length) return;
      const select = $("revisit-staff");
      select.replaceChildren(...staff.map((s) => h("option", { value: s.id }, `${s.name}（${s.customers}）`)));
      const wanted = params.get("staff_id");
      if (wanted && staff.some((s) => s.id === wanted)) select.value = wanted;
      select.onchange = () => showRevisits(select.value, params.get("date"));
      $("revisit-panel").hidden = false;
      await showRevisits(select.value, params.get("date"));
    } catch (error) {
      if (error.status !== 401) setStatus(`回访列表加载失败：${error.message}`, "error");
    }
  }

  async function showRevisits(staffId, day) {
    const query = new URLSearchParams({ limit: "10" });
    if (day) query.set("date", day);
    const queue = await api(`/v1/staff/${enc(staffId)}/revisits?${query}`);
    const list = $("revisit-items");
    list.replaceChildren(...queue.items.map((item) => revisitItem(item)));
    $("revisit-empty").hidden = queue.items.length > 0;
  }

  function revisitItem(item) {
    const open = h("button", { type: "button", class: "btn primary", "data-testid": "revisit-open" }, "打开");
    open.addEventListener("click", () => {
      $("revisit-panel").hidden = true;
      selectCustomer(item.customer_id);
    });
    const done = h("button", { type: "button", class: "btn", "data-testid": "revisit-done" }, "已联系");
    done.addEventListener("click", async () => {
      await api(`/v1/revisits/${enc(item.id)}/done`, { method: "POST", body: {} });
      node.remove();
    });
    const node = h("li", { class: "revisit", "data-testid": "revisit-item" },
      h("strong", {}, item.customer_name),
      h("p", { class: "reasons" }, item.reasons.join("；")),
      item.opener && item.opener.text ? h("p", { class: "opener" }, item.opener.text) : "",
      h("div", { class: "actions" }, open, done));
    return node;
  }

  async function loadCustomers() {
    if (state.customersLoaded) return;
    try {
      const page = await api("/v1/customers?limit=500");
      const select = $("customer-select");
      for (const item of page.items) {
        select.append(h("option", { value: item.id }, `${item.name}（${item.segment}）`));
      }
      state.customersLoaded = true;
      $("picker-panel").hidden = false;
    } catch (error) {
      if (error.status !== 401) setStatus(`客户列表加载失败：${error.message}`, "error");
    }
  }

  // ---- customer ----------------------------------------------------------------------------------
  async function selectCustomer(id) {
    $("revisit-panel").hidden = true;
    state.customerId = id;
    state.suggestion = null;
    state.basisKey = null;
    state.editing.clear();
    const select = $("customer-select");
    if (select.value !== id && [...select.options].some((o) => o.value === id)) select.value = id;
    setStatus("正在生成建议…");
    try {
      const [profile, messages] = await Promise.all([
        api(`/v1/customers/${enc(id)}`),
        api(`/v1/customers/${enc(id)}/last-message`),
      ]);
      if (state.customerId !== id) return;
      state.profile = profile;
      renderCustomer(profile);
      await suggest(messages);
    } catch (error) {
      if (error.status === 404) {
        setStatus(`找不到客户 ${id}，请从列表中选择。`, "error");
        await loadCustomers();
      } else if (error.status !== 401) {
        setStatus(`加载失败：${error.message}`, "error");
      }
    }
  }

  function renderCustomer(profile) {
    $("customer-card").hidden = false;
    const name = profile.salutation && profile.salutation !== profile.name
      ? `${profile.name}（${profile.salutation}）` : profile.name;
    $("customer-name").textContent = name;
    $("customer-segment").textContent = profile.segment || "default";

    const tags = Object.values(profile.tags || {}).flat().slice(0, 8);
    $("customer-tags").replaceChildren(...tags.map((tag) => h("li", {}, tag)));

    const orders = [...(profile.orders || [])].sort((a, b) => String(b.date).localeCompare(String(a.date)));
    $("customer-orders").replaceChildren(
      ...(orders.length ? orders.slice(0, 3).map((order) => {
        const items = order.items.map((line) => `${line.name}×${line.qty}`).join("、");
        const amount = order.items.reduce((sum, line) => sum + line.price * line.qty, 0);
        return h("li", {}, h("span", { class: "muted" }, `${order.date} `), items, ` · ${money(amount)}`);
      }) : [h("li", { class: "muted" }, "暂无订单")]),
    );

    const trail = [...(profile.behaviours || [])].sort((a, b) => String(b.ts).localeCompare(String(a.ts)));
    $("customer-trail").replaceChildren(
      ...(trail.length ? trail.slice(0, 4).map((event) => h(
        "li", {}, h("span", { class: "muted" }, `${fmtTime(event.ts)} `),
        BEHAVIOUR_NAMES[event.type] || event.type, event.detail || event.target ? ` · ${event.detail || event.target}` : "",
      )) : [h("li", { class: "muted" }, "暂无行为记录")]),
    );
    $("customer-trail-box").open = trail.length > 0;
  }

  // ---- suggestions ----------------------------------------------------------------------------------
  function requestMessages(messages) {
    return (messages.turns || []).slice(-50).filter((turn) => turn.text && turn.text.trim()).map((turn) => {
      const out = { role: turn.role, text: turn.text.slice(0, 4000) };
      if (turn.ts) out.ts = turn.ts;
      return out;
    });
  }

  // Stop the running suggestion stream: the server stops the model, and drafts still to come are dropped.
  function dropStream() {
    if (!state.stream) return;
    state.stream.controller.abort();
    state.stream = null;
    $("drafts-pending").hidden = true;
  }

  // One suggestion, streamed: analysis and script drafts at once, then each AI draft as it is written.
  async function suggest(messages) {
    dropStream(); // a newer suggestion replaces a running one
    const seq = ++state.seq;
    const customerId = state.customerId;
    const last = messages.last_customer_message;
    const stream = { controller: new AbortController(), basis: last ? last.key : null };
    state.stream = stream;
    state.loading = true;
    $("drafts").setAttribute("aria-busy", "true");
    const body = { customer_id: customerId, messages: requestMessages(messages) };
    if (state.profile && state.profile.staff_id) body.staff_id = state.profile.staff_id;
    const current = () => state.stream === stream && seq === state.seq && customerId === state.customerId;
    try {
      const response = await api("/v1/suggestions", {
        method: "POST", body, stream: true, signal: stream.controller.signal,
      });
      for await (const event of serverEvents(response)) {
        if (!current()) break; // dropped: whatever this stream still brings is stale
        if (event.kind === "analysis") {
          state.suggestion = { ...event.data, candidates: [] };
          state.basisKey = stream.basis;
          state.editing.clear();
          state.used.clear();
          rememberIntent(customerId, event.data);
          renderAnalysis(event.data);
          startDrafts(event.data);
          setStatus("");
        } else if (event.kind === "candidate") {
          state.suggestion.candidates.push(event.data);
          $("drafts").append(renderDraft(event.data, state.suggestion.candidates.length - 1));
        } else if (event.kind === "done") {
          state.suggestion = event.data;
        } else if (event.kind === "error") {
          setStatus(`部分建议生成失败：${event.data.detail}`, "error");
        }
        // `cancelled`: a newer suggestion for this chat took over; it renders its own drafts.
      }
    } catch (error) {
      if (error.name !== "AbortError" && current() && error.status !== 401) {
        setStatus(`生成建议失败：${error.message}`, "error");
      }
    } finally {
      if (state.stream === stream) {
        state.stream = null;
        $("drafts-pending").hidden = true;
      }
      if (seq === state.seq) {
        state.loading = false;
        $("drafts").setAttribute("aria-busy", "false");
      }
    }
  }

  async function refresh(manual) {
    if (!state.customerId) return;
    try {
      const messages = await api(`/v1/customers/${enc(state.customerId)}/last-message`);
      if (manual) setStatus("正在刷新建议…");
      await suggest(messages);
    } catch (error) {
      if (error.status !== 401) setStatus(`刷新失败：${error.message}`, "error");
    }
  }

  // ---- polling for new customer messages -------------------------------------------------------------
  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = 0;
  }

  function schedulePoll() {
    stopPolling();
    state.pollTimer = setTimeout(pollOnce, state.pollMs);
  }

  async function pollOnce() {
    if (!state.me) return;
    try {
      // Also while a suggestion is streaming: a customer who wrote again makes it stale.
      if (state.customerId && (state.suggestion || state.stream)) {
        const customerId = state.customerId;
        const messages = await api(`/v1/customers/${enc(customerId)}/last-message`);
        const last = messages.last_customer_message;
        const key = last ? last.key : null;
        const basis = state.stream ? state.stream.basis : state.basisKey;
        if (customerId === state.customerId && (state.suggestion || state.stream) && key !== basis) {
          dropStream(); // its drafts answer an older message: stop it, discard what it still sends
          if (state.suggestion) markStale(last);
          // Never throw away a draft the staff member is editing; they refresh when done.
          if (state.editing.size === 0) suggest(messages); // not awaited: polling goes on while it streams
        }
      }
    } catch (_) {
      // a missed poll is retried on the next tick
    }
    if (state.me) schedulePoll();
  }

  function markStale(last) {
    $("stale-note").hidden = false;
    $("stale-note").textContent = last
      ? `客户有新消息（${fmtTime(last.ts)}）：“${last.text.slice(0, 40)}”，以下建议已过期。`
      : "客户消息有变化，以下建议已过期。";
    for (const node of document.querySelectorAll("#drafts > li")) {
      if (node.dataset.stale === "true") continue;
      node.dataset.stale = "true";
      node.classList.add("stale");
      node.querySelector(".draft-head").append(h("span", { class: "badge stale", "data-testid": "stale" }, "已过期"));
    }
  }

  // ---- stage and intent ---------------------------------------------------------------------------
  function rememberIntent(customerId, out) {
    const storeKey = TREND_STORE + customerId;
    let trend = [];
    try {
      trend = JSON.parse(sessionStorage.getItem(storeKey) || "[]");
    } catch (_) {
      trend = [];
    }
    if (!Array.isArray(trend)) trend = [];
    if (!trend.some((point) => point.id === out.suggestion_id)) {
      trend.push({ id: out.suggestion_id, score: out.intent.score });
    }
    trend = trend.slice(-TREND_LENGTH);
    sessionStorage.setItem(storeKey, JSON.stringify(trend));
    return trend;
  }

  function readTrend(customerId) {
    try {
      const trend = JSON.parse(sessionStorage.getItem(TREND_STORE + customerId) || "[]");
      return Array.isArray(trend) ? trend : [];
    } catch (_) {
      return [];
    }
  }

  function sparkline(scores) {
    const width = 96;
    const height = 24;
    const step = scores.length > 1 ? width / (scores.length - 1) : 0;
    const points = scores.map((score, i) => [
      scores.length > 1 ? i * step : width / 2, height - 2 - (score / 100) * (height - 4),
    ]);
    const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-hidden": "true" });
    if (points.length > 1) node.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" ") }));
    const [x, y] = points[points.length - 1];
    node.append(svg("circle", { cx: x, cy: y, r: 2.5 }));
    return node;
  }

  function renderAnalysis(out) {
    $("analysis").hidden = false;
    const stage = out.stage;
    const confidence = Math.round(stage.confidence * 100);
    const bar = h("div", { class: "bar", role: "presentation" }, h("span"));
    bar.firstChild.style.width = `${confidence}%`;
    $("stage").replaceChildren(
      h("h3", {}, "阶段"),
      h("div", { class: "metric", "data-testid": "stage-name", "data-stage": stage.name },
        STAGE_NAMES[stage.name] || stage.name),
      h("div", { class: "muted" }, `置信度 ${confidence}%`),
      bar,
      h("ul", { class: "reasons", "aria-label": "判断依据" }, stage.reasons.map((reason) => h("li", {}, reason))),
    );

    const intent = out.intent;
    const scores = readTrend(state.customerId).map((point) => point.score);
    $("intent").replaceChildren(
      h("h3", {}, "购买意向"),
      h("div", { class: "metric" },
        h("span", { "data-testid": "intent-value" }, String(intent.score)),
        h("span", { class: "muted" }, ` / 100 · ${LEVEL_NAMES[intent.level] || intent.level}`)),
      h("div", { class: "trend", "data-testid": "intent-trend", "data-scores": scores.join(",") },
        sparkline(scores), h("span", {}, `近${scores.length}次：${scores.join(" → ")}`)),
      h("ul", { class: "factors", "aria-label": "意向因素" }, intent.factors.map((factor) => h(
        "li", { title: factor.evidence || "" },
        `${factor.label} ${factor.points >= 0 ? "+" : ""}${Math.round(factor.points)}`,
        factor.evidence ? h("span", { class: "muted" }, `（${factor.evidence}）`) : null,
      ))),
    );

    const flags = out.customer_message_flags || [];
    const note = $("customer-flags");
    note.hidden = flags.length === 0;
    note.textContent = flags.length
      ? `客户消息提示：${flags.map((flag) => flag.message).join("；")}` : "";
  }

  // ---- drafts -------------------------------------------------------------------------------------
  // Spans index code points of the text, [start, end); JS strings index UTF-16 units, so split first.
  function markedText(text, flags, idPrefix) {
    const chars = Array.from(text);
    const owner = new Array(chars.length).fill(-1);
    flags.forEach((flag, index) => {
      const [start, end] = flag.span;
      for (let i = Math.max(0, start); i < Math.min(end, chars.length); i += 1) {
        if (owner[i] === -1) owner[i] = index;
      }
    });
    const nodes = [];
    let i = 0;
    while (i < chars.length) {
      let j = i;
      while (j < chars.length && owner[j] === owner[i]) j += 1;
      const piece = chars.slice(i, j).join("");
      if (owner[i] === -1) {
        nodes.push(document.createTextNode(piece));
      } else {
        const flag = flags[owner[i]];
        nodes.push(h("mark", {
          class: `sev-${flag.severity}`, "data-testid": "flag", "data-rule": flag.rule_id,
          title: flag.message, "aria-describedby": `${idPrefix}-flag-${owner[i]}`,
        }, piece));
      }
      i = j;
    }
    return nodes;
  }

  function flagList(flags, idPrefix) {
    return h("ul", { class: "flags", "aria-label": "合规提示" }, flags.map((flag, index) => h(
      "li", { id: `${idPrefix}-flag-${index}`, class: `sev-${flag.severity}`, "data-testid": "flag-message" },
      h("strong", {}, `${SEVERITY_NAMES[flag.severity] || flag.severity}：`), flag.message,
      flag.suggestion ? h("div", { class: "rewrite" }, `建议改写：${flag.suggestion}`) : null,
    )));
  }

  // A new suggestion's list: empty, its drafts are appended as they arrive while 更多建议生成中 shows.
  function startDrafts(out) {
    $("drafts-panel").hidden = false;
    $("stale-note").hidden = true;
    $("drafts").dataset.suggestionId = out.suggestion_id;
    $("drafts").replaceChildren();
    $("drafts-pending").hidden = false;
    renderNotifiedDraft();
  }

  // ---- the draft an automation note linked to (/sidebar?customer_id=…&draft=…) ---------------------
  async function loadNotifiedDraft(id) {
    try {
      state.draft = await api(`/v1/drafts/${enc(id)}`);
    } catch (error) {
      if (error.status !== 401) setStatus(`通知里的草稿无法打开：${error.message}`, "error");
    }
  }

  function renderNotifiedDraft() {
    const draft = state.draft;
    const show = Boolean(draft && draft.customer_id === state.customerId);
    $("notified-panel").hidden = !show;
    if (!show) return;
    const node = renderDraft({
      id: draft.candidate_id || "", text: draft.text, requires_approval: draft.risk === "review" || draft.risk === "block",
      compliance: { flags: [] }, citations: [], drafter: draft.kind,
    }, "n");
    node.dataset.testid = "notified-draft";
    $("notified").replaceChildren(node);
  }

  function citationLabel(citation) {
    if (citation.kind === "script") return `话术 ${citation.id}`;
    if (citation.kind === "content") return `内容 ${citation.id}`;
    return `画像 · ${citation.field || citation.id}`;
  }

  // A held text: show why and 等待审批, disable `buttons`, and follow the approval until it is decided.
  function awaitApproval(node, held, stateLine, idPrefix, onApproved, buttons) {
    const flags = held.flags || [];
    node.querySelector(".gate-hold")?.remove();
    const box = h("div", { class: "gate-hold", "data-testid": "gate-hold" },
      flags.length ? flagList(flags, `${idPrefix}-g`) : null);
    node.querySelector(".actions").after(box);
    if (!held.approval_id) {
      stateLine.textContent = "内容被禁止发送，请修改被标出的词句。";
      stateLine.className = "draft-state badge blocked";
      stateLine.dataset.testid = "blocked";
      return;
    }
    for (const button of buttons) button.disabled = true;
    stateLine.textContent = "等待审批：已提交主管审批，通过后可发送。";
    stateLine.className = "draft-state badge waiting";
    stateLine.dataset.testid = "awaiting-approval";
    node.dataset.approvalId = held.approval_id;
    watchApproval(held.approval_id, node, (item) => {
      stateLine.dataset.testid = "draft-state";
      node.dataset.approval = item.status;
      if (item.status === "approved" || item.status === "edited_approved") {
        box.remove();
        stateLine.textContent = item.status === "edited_approved"
          ? `主管已修改并通过：“${item.final_text}”，可以发送。` : "主管已审批通过，可以发送。";
        stateLine.className = "draft-state badge done";
        onApproved(item);
      } else {
        stateLine.textContent = item.status === "rejected"
          ? `主管未通过${item.reason ? `：${item.reason}` : ""}，请换一条或修改后再发。` : "审批已过期，请重新提交。";
        stateLine.className = "draft-state badge blocked";
      }
    });
  }

  function renderDraft(candidate, index) {
    const idPrefix = `d${index}`;
    const held = candidate.requires_approval;
    const flags = candidate.compliance.flags || [];
    const stateLine = h("p", { class: "draft-state", "data-testid": "draft-state", "aria-live": "polite" });
    const detail = h("div", { class: "citation-detail", "data-testid": "citation-detail", hidden: true });

    const head = h("div", { class: "draft-head" }, h("h3", {}, `建议 ${index + 1}`));
    if (held) head.append(h("span", { class: "badge held", "data-testid": "held" }, "待审批"));
    if (candidate.drafter === "llm") {
      head.append(h("span", { class: "badge ai", "data-testid": "ai-badge", title: "由大模型生成，事实已核对出处" },
        "AI 生成"));
    }

    let why = "";
    if (held) why = "含需审批的合规风险：点“申请审批”请主管审批，通过后才能发送；也可按提示修改后再发。";
    else if (!state.inWeCom) why = "不在企业微信内：请用“复制”后粘贴到聊天框。";
    const insert = h("button", {
      type: "button", class: `btn primary${held ? " held" : ""}`, "data-testid": "insert",
      disabled: !state.inWeCom && !held, "aria-describedby": why ? `${idPrefix}-why` : null,
    }, held ? "申请审批" : "插入");
    const copy = h("button", { type: "button", class: "btn", "data-testid": "copy", disabled: held }, "复制");
    const edit = h("button", { type: "button", class: "btn", "data-testid": "edit", "aria-expanded": "false" },
      "修改后插入");
    const reject = h("button", { type: "button", class: "btn danger", "data-testid": "reject",
      "aria-expanded": "false" }, "不用");

    const node = h("li", {
      class: `draft${held ? " held" : ""}${candidate.drafter === "llm" ? " ai" : ""}`, "data-testid": "draft",
      "data-candidate-id": candidate.id, "data-drafter": candidate.drafter, "data-held": String(held),
      "data-stale": "false",
    },
    head,
    h("p", { class: "draft-text", "data-testid": "draft-text" }, markedText(candidate.text, flags, idPrefix)),
    flags.length ? flagList(flags, idPrefix) : null,
    candidate.citations.length ? h("div", { class: "citations" }, h("span", { class: "muted" }, "依据："),
      candidate.citations.map((citation) => h("button", {
        type: "button", class: "citation", "data-testid": "citation", "data-kind": citation.kind,
        "data-id": citation.id, "aria-expanded": "false",
        onclick: (event) => toggleCitation(event.currentTarget, citation, detail),
      }, citationLabel(citation)))) : null,
    detail,
    h("div", { class: "actions" }, insert, copy, edit, reject),
    why ? h("p", { id: `${idPrefix}-why`, class: "hint" }, why) : null,
    stateLine);

    const done = (message) => {
      stateLine.textContent = message;
      stateLine.className = "draft-state badge done";
    };
    // What the gate approved for this draft (after 等待审批), and whether that text may now be delivered.
    let approvedText = null;

    const used = async () => {
      if (!state.used.has(candidate.id)) {
        state.used.add(candidate.id);
        await sendFeedback(candidate, "used");
      }
    };

    // The gate first; then the chat input (WeCom) or the clipboard, with exactly the accepted text.
    const send = async (how) => {
      const text = approvedText || candidate.text;
      const answer = await gate(text, candidate.id);
      if (answer.held) {
        awaitApproval(node, answer.held, stateLine, idPrefix, (item) => {
          approvedText = item.final_text || item.text;
          insert.disabled = !state.inWeCom;
          copy.disabled = false;
          insert.textContent = "插入已审批内容";
        }, [insert, copy]);
        return;
      }
      if (how === "insert") await sendChatMessage(answer.sent);
      else await copyText(answer.sent);
      done(how === "insert" ? "已插入聊天框" : "已复制，可粘贴到聊天框");
      approvedText = null;
      await used();
    };

    insert.addEventListener("click", async () => {
      if (!state.inWeCom && !(held && !approvedText)) return;
      try {
        await send(state.inWeCom ? "insert" : "copy");
      } catch (error) {
        setStatus(`插入失败：${error.message}`, "error");
      }
    });

    copy.addEventListener("click", async () => {
      try {
        await send("copy");
      } catch (error) {
        setStatus(`复制失败：${error.message}`, "error");
      }
    });

    edit.addEventListener("click", () => openEditor(node, candidate, edit, done, idPrefix));
    reject.addEventListener("click", () => openRejector(node, candidate, reject, done, idPrefix));
    return node;
  }

  async function toggleCitation(button, citation, detail) {
    const open = button.getAttribute("aria-expanded") === "true";
    for (const other of button.parentElement.querySelectorAll(".citation")) {
      other.setAttribute("aria-expanded", "false");
    }
    if (open) {
      detail.hidden = true;
      return;
    }
    button.setAttribute("aria-expanded", "true");
    detail.hidden = false;
    detail.replaceChildren(h("p", { class: "muted" }, "加载中…"));
    try {
      detail.replaceChildren(...(await citationView(citation)));
    } catch (error) {
      detail.replaceChildren(h("p", { class: "note error" }, `引用加载失败：${error.message}`));
    }
  }

  async function citationView(citation) {
    if (citation.kind === "profile") {
      const path = (citation.field || "").split(".").filter(Boolean);
      let value = state.profile;
      for (const part of path) value = value && typeof value === "object" ? value[part] : undefined;
      const shown = value === undefined ? "（画像中无此字段）"
        : typeof value === "object" ? JSON.stringify(value) : String(value);
      return [h("h3", {}, `客户画像 · ${citation.field || ""}`), h("p", {}, shown)];
    }
    const cacheKey = `${citation.kind}/${citation.id}`;
    let item = state.citationCache.get(cacheKey);
    if (!item) {
      item = await api(`/v1/knowledge/items/${enc(citation.kind)}/${enc(citation.id)}`);
      state.citationCache.set(cacheKey, item);
    }
    if (item.kind === "script") {
      return [
        h("h3", {}, `话术 ${item.id} · ${STAGE_NAMES[item.stage] || item.stage} · ${item.scenario}`),
        h("p", { "data-testid": "citation-text" }, item.text),
      ];
    }
    const lines = [h("h3", {}, item.title || item.id), h("p", { "data-testid": "citation-text" }, item.summary || "")];
    if (item.price !== undefined && item.price !== null) lines.push(h("p", { class: "muted" }, `售价 ${money(item.price)}`));
    if (item.valid_to) lines.push(h("p", { class: "muted" }, `有效期至 ${item.valid_to}`));
    if (item.url) lines.push(h("p", { class: "muted" }, item.url));
    return lines;
  }

  function closePanels(node) {
    for (const panel of node.querySelectorAll(".editor, .rejector")) panel.remove();
    for (const button of node.querySelectorAll('[data-testid="edit"], [data-testid="reject"]')) {
      button.setAttribute("aria-expanded", "false");
    }
  }

  function openEditor(node, candidate, button, done, idPrefix) {
    const wasOpen = node.querySelector(".editor");
    closePanels(node);
    if (wasOpen) {
      state.editing.delete(candidate.id);
      return;
    }
    state.editing.add(candidate.id);
    button.setAttribute("aria-expanded", "true");
    const area = h("textarea", { id: `${idPrefix}-edit`, "data-testid": "edit-text" });
    area.value = candidate.text;
    const check = h("div", { "data-testid": "edit-check", "aria-live": "polite" });
    const confirm = h("button", { type: "button", class: "btn primary", "data-testid": "edit-confirm" },
      state.inWeCom ? "插入修改后的内容" : "复制修改后的内容");
    const cancel = h("button", { type: "button", class: "btn", "data-testid": "edit-cancel" }, "取消");
    const panel = h("div", { class: "editor" },
      h("label", { for: `${idPrefix}-edit` }, "修改草稿（发送前会重新做合规检查）"), area, check,
      h("div", { class: "actions" }, confirm, cancel));
    node.querySelector(".actions").after(panel);
    area.focus();

    cancel.addEventListener("click", () => {
      closePanels(node);
      state.editing.delete(candidate.id);
      button.focus();
    });
    confirm.addEventListener("click", async () => {
      const text = area.value.trim();
      if (!text) {
        check.replaceChildren(h("p", { class: "note error" }, "内容不能为空。"));
        return;
      }
      const unchanged = text === candidate.text;
      confirm.disabled = true;
      try {
        // The edited text goes through the same gate as any draft: held text waits for a supervisor.
        const answer = await gate(text, candidate.id);
        if (answer.held) {
          const flags = answer.held.flags || [];
          const waiting = h("p", { class: "note error", "data-testid": "edit-refused" }, answer.held.approval_id
            ? "修改后的内容仍有合规风险，已提交主管审批，通过后才能发送（等待审批）。"
            : "修改后的内容被禁止发送，请修改被标出的词句。");
          check.replaceChildren(waiting, h("p", { class: "draft-text" }, markedText(text, flags, `${idPrefix}-e`)),
            flagList(flags, `${idPrefix}-e`));
          if (answer.held.approval_id) {
            watchApproval(answer.held.approval_id, node, (item) => {
              const ok = item.status === "approved" || item.status === "edited_approved";
              waiting.textContent = ok ? "主管已审批通过，再点一次即可发送。" : "主管未通过，请再修改。";
              waiting.className = ok ? "note" : "note error";
              if (ok) area.value = item.final_text || item.text;
            });
          }
          return;
        }
        const how = await deliver(answer.sent);
        closePanels(node);
        state.editing.delete(candidate.id);
        done(how === "inserted" ? "已插入修改后的内容" : "已复制修改后的内容");
        if (unchanged) {
          if (!state.used.has(candidate.id)) {
            state.used.add(candidate.id);
            await sendFeedback(candidate, "used");
          }
        } else {
          await sendFeedback(candidate, "edited", { final_text: text });
        }
        button.focus();
      } catch (error) {
        check.replaceChildren(h("p", { class: "note error" }, `发送失败：${error.message}`));
      } finally {
        confirm.disabled = false;
      }
    });
  }

  function openRejector(node, candidate, button, done, idPrefix) {
    const wasOpen = node.querySelector(".rejector");
    closePanels(node);
    state.editing.delete(candidate.id);
    if (wasOpen) return;
    button.setAttribute("aria-expanded", "true");
    const select = h("select", { id: `${idPrefix}-reason`, "data-testid": "reject-reason" },
      REJECT_REASONS.map((reason) => h("option", { value: reason }, reason)));
    const note = h("input", { id: `${idPrefix}-note`, type: "text", placeholder: "补充说明（可选）",
      "data-testid": "reject-note", maxlength: 200 });
    const confirm = h("button", { type: "button", class: "btn danger", "data-testid": "reject-confirm" }, "确认不用");
    const cancel = h("button", { type: "button", class: "btn" }, "取消");
    const panel = h("div", { class: "rejector" },
      h("div", { class: "row" }, h("label", { for: `${idPrefix}-reason` }, "原因"), select),
      h("label", { for: `${idPrefix}-note`, class: "sr-only" }, "补充说明"), note,
      h("div", { class: "actions" }, confirm, cancel));
    node.querySelector(".actions").after(panel);
    select.focus();

    cancel.addEventListener("click", () => {
      closePanels(node);
      button.focus();
    });
    confirm.addEventListener("click", async () => {
      const reason = note.value.trim() ? `${select.value}：${note.value.trim()}` : select.value;
      confirm.disabled = true;
      await sendFeedback(candidate, "rejected", { reason });
      closePanels(node);
      node.classList.add("rejected");
      done(`已标记不用（${reason}）`);
      button.focus();
    });
  }

  // ---- search -------------------------------------------------------------------------------------
  async function search() {
    const q = $("search-q").value.trim();
    const results = $("search-results");
    if (!q) {
      results.replaceChildren(h("li", { class: "muted" }, "请输入关键词。"));
      return;
    }
    const params = new URLSearchParams({ q, k: "8" });
    for (const [name, id] of [["stage", "search-stage"], ["kind", "search-kind"], ["scenario", "search-scenario"]]) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    results.setAttribute("aria-busy", "true");
    try {
      const out = await api(`/v1/knowledge/search?${params}`);
      for (const hit of out.results) for (const scenario of hit.scenarios) state.scenarios.add(scenario);
      $("scenario-options").replaceChildren(...[...state.scenarios].sort().map((s) => h("option", { value: s })));
      results.replaceChildren(...(out.results.length ? out.results.map(searchResult)
        : [h("li", { class: "muted" }, "没有找到相关话术或内容。")]));
    } catch (error) {
      if (error.status !== 401) results.replaceChildren(h("li", { class: "note error" }, `搜索失败：${error.message}`));
    } finally {
      results.setAttribute("aria-busy", "false");
    }
  }

  function searchResult(hit) {
    const message = h("span", { class: "hint", "aria-live": "polite" });
    const copy = h("button", { type: "button", class: "btn", "data-testid": "result-copy" }, "复制");
    copy.addEventListener("click", async () => {
      try {
        await copyText(hit.text);
        message.textContent = "已复制";
      } catch (error) {
        message.textContent = error.message;
      }
    });
    const actions = h("div", { class: "actions" }, copy);
    if (state.inWeCom) {
      const insert = h("button", { type: "button", class: "btn primary", "data-testid": "result-insert" }, "插入");
      insert.addEventListener("click", async () => {
        if (!state.customerId) {
          message.textContent = "请先打开一位客户的聊天";
          return;
        }
        try {
          const answer = await gate(hit.text, null);
          if (answer.held) {
            message.textContent = answer.held.approval_id ? "需审批：已提交主管审批（等待审批）" : "禁止发送：请修改后再用";
            return;
          }
          await sendChatMessage(answer.sent);
          message.textContent = "已插入聊天框（发送前请替换 {变量}）";
        } catch (error) {
          message.textContent = `插入失败：${error.message}`;
        }
      });
      actions.prepend(insert);
    }
    const kind = hit.kind === "script" ? "话术" : "内容";
    const stages = hit.stages.map((stage) => STAGE_NAMES[stage] || stage).join("/");
    return h("li", { "data-testid": "search-result", "data-kind": hit.kind, "data-id": hit.id },
      h("p", {}, h("span", { class: "badge" }, kind), " ", h("strong", {}, hit.title || hit.id)),
      h("p", {}, hit.text),
      h("p", { class: "muted" }, [stages, hit.scenarios.join("、")].filter(Boolean).join(" · ")),
      actions, message);
  }

  document.addEventListener("DOMContentLoaded", () => {
    boot().catch((error) => setStatus(`启动失败：${error.message}`, "error"));
  });
})();
