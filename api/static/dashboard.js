/* Team dashboard: statistics, daily trends, copilot use and inspection hits for a signed-in supervisor
   (their team) or admin (everyone). Reads GET /v1/stats/staff and GET /v1/inspection/hits; "已处理" posts
   /v1/inspection/hits/{id}/handle with the session's CSRF token. Charts are ECharts, served from this
   server's own static folder. */
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const SEVERITY = { warn: "提醒", review: "需复核", block: "严重" };
  const ROLE = { supervisor: "主管", admin: "管理员", staff: "导购", service: "系统" };
  const state = { me: null, csrf: "", rows: [], days: [], hits: [], sort: { key: "customer_messages", dir: -1 },
                  teams: new Set(), charts: {} };

  function status(text, isError = false) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("error", isError);
  }

  async function api(path, init = {}) {
    const headers = Object.assign({ Accept: "application/json" }, init.headers || {});
    if (init.method && init.method !== "GET") {
      headers["X-CSRF-Token"] = state.csrf;
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, Object.assign({}, init, { headers, credentials: "same-origin" }));
    if (response.status === 401) {
      location.assign(loginUrl());
      throw new Error("请先登录");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || `请求失败（${response.status}）`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function loginUrl() {
    const params = new URLSearchParams(location.search);
    const query = new URLSearchParams({ next: `/dashboard${location.search}` });
    if (params.get("tenant")) query.set("tenant", params.get("tenant"));
    return `/auth/wecom/login?${query}`;
  }

  // ---- formatting -------------------------------------------------------------------------------------
  const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
  function dur(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${Math.round(seconds)} 秒`;
    if (seconds < 3600) return `${(seconds / 60).toFixed(1)} 分钟`;
    return `${(seconds / 3600).toFixed(1)} 小时`;
  }
  const sum = (values) => values.reduce((a, b) => a + (b || 0), 0);
  const hitsTotal = (row) => sum(Object.values(row.compliance_hits || {}));
  const ordersTotal = (row) => sum(Object.values(row.orders_7d || {}));
  const adoption = (row) => (row.suggestions_shown
    ? (row.suggestions_used + row.suggestions_edited) / row.suggestions_shown : null);
  function localDay(date) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(date);
  }
  function localTime(iso) {
    return new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
                                              hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
  }

  // ---- query --------------------------------------------------------------------------------------------
  function range() {
    const query = new URLSearchParams({ from: $("from").value, to: $("to").value });
    if ($("team").value) query.set("team", $("team").value);
    return query;
  }

  function setExports() {
    for (const format of ["csv", "xlsx"]) {
      const query = range();
      query.set("group_by", "day");
      query.set("format", format);
      $(`export-${format}`).href = `/v1/stats/staff?${query}`;
    }
  }

  async function load() {
    if (!$("from").value || !$("to").value) return;
    status("加载中…");
    setExports();
    const query = range();
    const byDay = new URLSearchParams(query);
    byDay.set("group_by", "day");
    const hitQuery = new URLSearchParams({ from: $("from").value, to: $("to").value });
    if ($("hit-status").value) hitQuery.set("status", $("hit-status").value);
    if ($("hit-severity").value) hitQuery.set("severity", $("hit-severity").value);
    try {
      const [rows, days, hits] = await Promise.all([
        api(`/v1/stats/staff?${query}`), api(`/v1/stats/staff?${byDay}`), api(`/v1/inspection/hits?${hitQuery}`)]);
      state.rows = rows.items.map((r) => Object.assign(r, { hits_total: hitsTotal(r), orders_total: ordersTotal(r),
                                                            adoption: adoption(r) }));
      state.days = days.items;
      const team = $("team").value;
      state.hits = team ? hits.items.filter((h) => state.rows.some((r) => r.staff_id === h.staff_id)) : hits.items;
      rememberTeams(state.rows);
      renderTable();
      renderCharts();
      renderFunnel();
      renderHits();
      $("range-note").textContent = `${$("from").value} 至 ${$("to").value}，${state.rows.length} 人`;
      status(`已更新 ${localTime(new Date().toISOString())}`);
    } catch (error) {
      status(error.message, true);
    }
  }

  function rememberTeams(rows) {
    let added = false;
    for (const row of rows) {
      if (row.team && !state.teams.has(row.team)) {
        state.teams.add(row.team);
        added = true;
      }
    }
    if (!added) return;
    const select = $("team");
    const chosen = select.value;
    select.replaceChildren(new Option("全部小组", ""), ...[...state.teams].sort().map((t) => new Option(t, t)));
    select.value = chosen;
  }

  // ---- team table ----------------------------------------------------------------------------------------
  function renderTable() {
    const { key, dir } = state.sort;
    const head = document.querySelectorAll("[data-testid=team-table] th");
    head.forEach((th) => th.setAttribute("aria-sort", th.dataset.key === key
      ? (dir > 0 ? "ascending" : "descending") : "none"));
    const rows = [...state.rows].sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return a.staff_id < b.staff_id ? -1 : 1;
      if (x === null || x === undefined) return 1; // no figure: always last
      if (y === null || y === undefined) return -1;
      return (typeof x === "string" ? x.localeCompare(y, "zh-CN") : x - y) * dir;
    });
    const body = $("team-rows");
    body.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.staffId = row.staff_id;
      tr.dataset.testid = "team-row";
      tr.setAttribute("data-testid", "team-row");
      head.forEach((th) => {
        const td = document.createElement("td");
        const value = row[th.dataset.key];
        td.dataset.key = th.dataset.key;
        td.textContent = th.dataset.format === "pct" ? pct(value) : th.dataset.format === "dur" ? dur(value)
          : (value === null || value === undefined || value === "" ? "–" : String(value));
        if ((th.dataset.key === "timeouts" || th.dataset.key === "hits_total") && value > 0) td.className = "bad";
        tr.append(td);
      });
      return tr;
    }));
    $("team-empty").hidden = rows.length > 0;
  }

  function sortBy(th) {
    const key = th.dataset.key;
    const text = th.dataset.type === "text";
    state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: text ? 1 : -1 };
    renderTable();
  }

  // ---- charts ---------------------------------------------------------------------------------------------
  function perDay() {
    const out = new Map();
    for (let d = new Date(`${$("from").value}T00:00:00Z`); localDayUtc(d) <= $("to").value;
      d = new Date(d.getTime() + 86400000)) {
      out.set(localDayUtc(d), { received: 0, sent: 0, turns: 0, answered: 0, within: 0, timeouts: 0, hits: 0 });
    }
    for (const row of state.days) {
      const day = out.get(row.day);
      if (!day) continue;
      day.received += row.customer_messages;
      day.sent += row.messages_sent;
      day.turns += row.turns;
      day.answered += row.answered;
      day.within += row.within_3min_rate === null ? 0 : Math.round(row.within_3min_rate * row.turns);
      day.timeouts += row.timeouts;
      day.hits += hitsTotal(row);
    }
    return out;
  }
  const localDayUtc = (d) => d.toISOString().slice(0, 10);

  function chart(id) {
    if (!window.echarts) return null;
    if (!state.charts[id]) state.charts[id] = window.echarts.init($(id), null, { renderer: "canvas" });
    return state.charts[id];
  }

  function renderCharts() {
    if (!window.echarts) {
      status("图表库没有加载：请运行 make install（它会把 ECharts 放进静态目录）", true);
      return;
    }
    const days = perDay();
    const labels = [...days.keys()].map((d) => d.slice(5));
    const values = [...days.values()];
    const rate = (a, b) => (b ? +(a / b * 100).toFixed(1) : null);
    const base = { grid: { left: 44, right: 16, top: 40, bottom: 28 }, tooltip: { trigger: "axis" },
                   legend: { top: 0 }, xAxis: { type: "category", data: labels } };
    chart("chart-volume").setOption(Object.assign({}, base, {
      title: { show: false },
      yAxis: { type: "value", name: "条", minInterval: 1 },
      series: [{ name: "客户消息", type: "line", data: values.map((v) => v.received) },
               { name: "发送消息", type: "line", data: values.map((v) => v.sent) }],
    }), true);
    chart("chart-rates").setOption(Object.assign({}, base, {
      yAxis: { type: "value", name: "%", max: 100 },
      series: [{ name: "回复率", type: "line", data: values.map((v) => rate(v.answered, v.turns)) },
               { name: "3 分钟内回复", type: "line", data: values.map((v) => rate(v.within, v.turns)) }],
    }), true);
    chart("chart-issues").setOption(Object.assign({}, base, {
      yAxis: { type: "value", name: "次", minInterval: 1 },
      series: [{ name: "超时", type: "bar", data: values.map((v) => v.timeouts) },
               { name: "合规命中", type: "bar", data: values.map((v) => v.hits) }],
    }), true);
  }

  function renderFunnel() {
    const total = (field) => sum(state.rows.map((r) => r[field]));
    const shown = total("suggestions_shown"), used = total("suggestions_used"), edited = total("suggestions_edited");
    const ignored = total("suggestions_ignored");
    const waits = state.rows.map((r) => r.approval_wait_median_s).filter((v) => v !== null && v !== undefined);
    const orders = { high: 0, medium: 0, low: 0, unknown: 0 };
    for (const row of state.rows) for (const band of Object.keys(orders)) orders[band] += (row.orders_7d || {})[band] || 0;
    $("f-shown").textContent = shown;
    $("f-used").textContent = `${used}（${pct(shown ? used / shown : null)}）`;
    $("f-edited").textContent = `${edited}（${pct(shown ? edited / shown : null)}）`;
    $("f-ignored").textContent = `${ignored}（${pct(shown ? ignored / shown : null)}）`;
    // Per-person medians cannot be merged exactly; the range shows their spread.
    $("f-wait").textContent = waits.length ? (waits.length === 1 ? dur(waits[0])
      : `${dur(Math.min(...waits))} ~ ${dur(Math.max(...waits))}（按人）`) : "–";
    $("f-revisits").textContent = `${total("revisits_done")} / ${total("revisits_overdue")}`;
    $("f-orders").textContent = `${orders.high} / ${orders.medium} / ${orders.low} / ${orders.unknown}`;
    const funnel = chart("chart-funnel");
    if (!funnel) return;
    funnel.setOption({
      tooltip: { trigger: "item", formatter: "{b}: {c}" },
      series: [{ type: "funnel", left: 10, right: 10, top: 10, bottom: 10, sort: "descending", minSize: "10%",
                 label: { show: true, position: "inside", formatter: "{b} {c}" },
                 data: [{ name: "建议展示", value: shown }, { name: "被采用", value: used + edited },
                        { name: "原样发送", value: used }] }],
    }, true);
  }

  // ---- hits ----------------------------------------------------------------------------------------------
  const RANK = { block: 0, review: 1, warn: 2 };
  function renderHits() {
    // The most serious first; within a severity the route's order (newest first) stays.
    const ordered = state.hits.map((hit, index) => [hit, index])
      .sort(([a, i], [b, j]) => ((RANK[a.severity] ?? 3) - (RANK[b.severity] ?? 3)) || i - j).map(([hit]) => hit);
    $("hits").replaceChildren(...ordered.map(hitItem));
    $("hits-empty").hidden = state.hits.length > 0;
  }

  function hitItem(hit) {
    const li = document.createElement("li");
    li.className = "hit";
    li.dataset.hitId = hit.id;
    li.setAttribute("data-testid", "hit");
    const header = document.createElement("header");
    const badge = document.createElement("span");
    badge.className = `badge ${hit.severity}`;
    badge.textContent = SEVERITY[hit.severity] || hit.severity;
    const title = document.createElement("strong");
    title.textContent = `${hit.name || hit.staff_id} · ${hit.rule_name}`;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = localTime(hit.at) + (hit.customer_id ? ` · 客户 ${hit.customer_id}` : "");
    header.append(badge, title, when);
    if (hit.status === "handled") {
      const done = document.createElement("span");
      done.className = "done";
      done.setAttribute("data-testid", "handled");
      done.textContent = `已处理${hit.handled_by ? `（${hit.handled_by}）` : ""}`;
      header.append(done);
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn handle";
      button.setAttribute("data-testid", "handle");
      button.textContent = "已处理";
      button.addEventListener("click", () => handle(hit, button));
      header.append(button);
    }
    li.append(header);
    if (hit.context && hit.context.length) {
      const list = document.createElement("ol");
      list.className = "context";
      list.setAttribute("data-testid", "hit-context");
      for (const message of hit.context) {
        const item = document.createElement("li");
        item.className = [message.role, message.hit ? "hit-msg" : "", message.withdrawn ? "withdrawn" : ""]
          .filter(Boolean).join(" ");
        if (message.hit) item.setAttribute("data-testid", "hit-message");
        const role = document.createElement("span");
        role.className = "role";
        role.textContent = `${message.role === "staff" ? "员工" : "客户"} ${localTime(message.ts)}`;
        const text = document.createElement("span");
        text.className = "text";
        text.textContent = message.msgtype === "text" || message.msgtype === "mixed" ? message.text
          : `[${message.msgtype}] ${message.text || ""}`;
        item.append(role, text);
        if (message.withdrawn) item.append(" （已撤回）");
        list.append(item);
      }
      li.append(list);
    } else if (hit.detail && hit.detail.deadline) {
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = `截止 ${localTime(hit.detail.deadline)} 前未回复`;
      li.append(note);
    }
    return li;
  }

  async function handle(hit, button) {
    button.disabled = true;
    try {
      const updated = await api(`/v1/inspection/hits/${encodeURIComponent(hit.id)}/handle`,
                                { method: "POST", body: "{}" });
      const index = state.hits.findIndex((h) => h.id === hit.id);
      state.hits[index] = updated;
      document.querySelector(`[data-hit-id="${CSS.escape(hit.id)}"]`).replaceWith(hitItem(updated));
      status("已标记为已处理");
    } catch (error) {
      button.disabled = false;
      status(error.message, true);
    }
  }

  // ---- start ---------------------------------------------------------------------------------------------
  async function start() {
    try {
      state.me = await api("/v1/me");
    } catch (error) {
      status(error.message, true);
      return;
    }
    state.csrf = state.me.csrf_token || "";
    const role = ROLE[state.me.role] || state.me.role;
    $("who").textContent = `${state.me.name || state.me.staff_id || ""} · ${role}${state.me.team ? ` · ${state.me.team}` : ""}`;
    if (state.me.role !== "supervisor" && state.me.role !== "admin") {
      $("denied").hidden = false;
      $("filters").hidden = true;
      status("");
      return;
    }
    const params = new URLSearchParams(location.search);
    const today = localDay(new Date());
    const weekAgo = localDay(new Date(Date.now() - 6 * 86400000));
    $("from").value = params.get("from") || weekAgo;
    $("to").value = params.get("to") || today;
    $("team-label").hidden = state.me.role !== "admin";
    if (params.get("team") && state.me.role === "admin") {
      state.teams.add(params.get("team"));
      rememberTeams([]);
      $("team").replaceChildren(new Option("全部小组", ""), new Option(params.get("team"), params.get("team")));
      $("team").value = params.get("team");
    }
    $("board").hidden = false;
    document.querySelectorAll("[data-testid=team-table] th").forEach((th) => {
      th.tabIndex = 0;
      th.addEventListener("click", () => sortBy(th));
      th.addEventListener("keydown", (event) => { if (event.key === "Enter") sortBy(th); });
    });
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
    $("hit-status").addEventListener("change", load);
    $("hit-severity").addEventListener("change", load);
    window.addEventListener("resize", () => Object.values(state.charts).forEach((c) => c.resize()));
    await load();
  }

  start();
})();
