/*
 * pushgate campaigns dashboard: one page, hash routes `#/` (campaigns) and `#/campaigns/<id>`.
 *
 * Vendored: Chart.js 4.6.1 (chart.umd.js, the UMD build of the npm package chart.js@4.6.1, MIT,
 * see chart.LICENSE.md). No framework and no build step.
 *
 * The server sends a strict Content-Security-Policy (script-src 'self', style-src 'self'), so every
 * element is built with the DOM API (text through textContent, never innerHTML: campaign names come
 * from API callers), styled by app.css classes, and nothing is evaluated from strings. The session
 * is an HttpOnly cookie; the API key is only ever in the sign-in POST body.
 */
(function () {
  'use strict';

  const PER_PAGE = 200; // the largest page GET /dashboard/api/campaigns allows
  const MAX_PAGES = 500; // a guard against a total that keeps moving while we page
  const MAX_FILLED_HOURS = 24 * 92; // longer series are drawn as reported, without zero hours

  const FUNNEL_CHART = ['requested', 'resolved', 'queued', 'accepted', 'delivered', 'opened'];
  const FUNNEL_NUMBERS = [
    ['requested', 'Requested', 'users answered for the campaign'],
    ['resolved', 'Resolved', 'requested users that matched a profile'],
    ['queued', 'Queued', 'sends durably queued'],
    ['scheduled', 'Scheduled', 'of the queued, waiting for their time (send_at, local_time, quiet hours)'],
    ['accepted', 'Accepted', 'accepted by the provider'],
    ['failed', 'Failed', 'failed for good'],
    ['cancelled', 'Cancelled', 'of the failed, stopped by cancelling the campaign before they were sent'],
    ['expired', 'Expired', 'not accepted within the TTL'],
    ['pending', 'Pending', 'still queued or being retried'],
    ['delivered', 'Delivered', 'users whose app reported the push'],
    ['opened', 'Opened', 'users who opened the push'],
  ];
  const PLATFORMS = ['ios', 'android', 'huawei'];
  const PLATFORM_LABELS = { ios: 'iOS', android: 'Android', huawei: 'Huawei' };
  const PLATFORM_FIELDS = ['queued', 'accepted', 'failed', 'expired'];
  const COLUMNS = [
    { key: 'camp_id', label: 'ID', type: 'number' },
    { key: 'name', label: 'Name', type: 'text' },
    { key: 'created_at', label: 'Created', type: 'date' },
    { key: 'requested', label: 'Requested', type: 'number' },
    { key: 'queued', label: 'Queued', type: 'number' },
    { key: 'scheduled', label: 'Scheduled', type: 'number' },
    { key: 'accepted', label: 'Accepted', type: 'number' },
    { key: 'failed', label: 'Failed', type: 'number' },
    { key: 'cancelled', label: 'Cancelled', type: 'number' },
    { key: 'delivered', label: 'Delivered', type: 'number' },
    { key: 'opened', label: 'Opened', type: 'number' },
    { key: 'open_rate', label: 'Open rate', type: 'rate' },
  ];
  const COLORS = {
    requested: '#64748b',
    resolved: '#94a3b8',
    queued: '#0ea5e9',
    accepted: '#2563eb',
    delivered: '#16a34a',
    opened: '#9333ea',
    ios: '#475569',
    android: '#22c55e',
    huawei: '#ef4444',
  };

  const state = {
    partner: null,
    range: defaultRange(),
    query: '',
    sort: { key: 'created_at', dir: 'desc' },
    campaigns: [],
    charts: [],
    seq: 0, // bumped on every navigation; late answers of an older view are dropped
  };

  const $ = (id) => document.getElementById(id);

  // ---- DOM and formatting helpers ----

  /** h('td', {class: 'num', testid: 'x'}, 'text', node, ...): an element; text is never parsed. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'testid') el.dataset.testid = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  /** Plain integers, no separators: what is shown is what the API answered. */
  function int(n) {
    return String(Math.round(Number(n) || 0));
  }

  function rate(r) {
    return (Number(r) || 0).toFixed(2) + '%';
  }

  function localDay(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function dateTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${localDay(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function utcOffset() {
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes < 0 ? '−' : '+';
    const abs = Math.abs(minutes);
    return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  function defaultRange() {
    const to = new Date();
    const from = new Date(to.getFullYear(), to.getMonth(), to.getDate() - 29);
    return { from: localDay(from), to: localDay(to) };
  }

  /** Local calendar day `YYYY-MM-DD` (+ `extraDays`) at 00:00 as epoch seconds. */
  function dayStart(day, extraDays) {
    const [y, m, d] = day.split('-').map(Number);
    return Math.floor(new Date(y, m - 1, d + (extraDays || 0)).getTime() / 1000);
  }

  // ---- the server ----

  class ApiError extends Error {
    constructor(status, body) {
      const message = body && typeof body.message === 'string' ? body.message : '';
      super(message || `The server answered ${status}.`);
      this.status = status;
      this.code = body && body.error;
    }
  }

  async function request(method, path, body) {
    const init = {
      method,
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, { message: 'The server cannot be reached.' });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data || {};
  }

  /** Calls under /dashboard/api: a 401 means the session ended, so the sign-in form returns. */
  async function api(path) {
    try {
      return await request('GET', path);
    } catch (err) {
      if (err.status === 401) {
        endSession('Your session has ended. Sign in again.');
        return null;
      }
      throw err;
    }
  }

  // ---- session ----

  function showSignIn(message) {
    destroyCharts();
    state.seq += 1;
    $('booting').hidden = true;
    $('account').hidden = true;
    $('view').hidden = true;
    $('view').replaceChildren();
    $('signin').hidden = false;
    setSignInError(message || '');
    document.title = 'Sign in · pushgate';
    $('api-key').focus();
  }

  function setSignInError(message) {
    const el = $('signin-error');
    el.textContent = message;
    el.hidden = !message;
  }

  function signedIn(partner) {
    state.partner = partner;
    $('booting').hidden = true;
    $('signin').hidden = true;
    $('partner-name').textContent = partner;
    $('account').hidden = false;
    $('view').hidden = false;
    route();
  }

  function endSession(message) {
    state.partner = null;
    state.campaigns = [];
    // Forget the view: the next person to sign in starts at the campaign list.
    history.replaceState(null, '', location.pathname + location.search);
    showSignIn(message);
  }

  async function onSignIn(event) {
    event.preventDefault(); // never a native submit: the key stays out of URLs and history
    const input = $('api-key');
    const key = input.value.trim();
    if (!key) {
      setSignInError('Enter your API key.');
      return;
    }
    const button = $('signin-button');
    button.disabled = true;
    setSignInError('');
    try {
      const session = await request('POST', '/dashboard/session', { api_key: key });
      input.value = '';
      signedIn(session.partner);
    } catch (err) {
      setSignInError(
        err.status === 401 ? 'That API key was not accepted. Check it and try again.' : err.message,
      );
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  async function onSignOut() {
    const button = $('signout');
    button.disabled = true;
    try {
      await request('DELETE', '/dashboard/session');
    } catch (err) {
      if (err.status !== 401) {
        // The cookie may still be valid: say so instead of pretending to have signed out.
        showError(`Signing out failed: ${err.message}`);
        return;
      }
    } finally {
      button.disabled = false;
    }
    endSession('');
  }

  // ---- routing and views ----

  function route() {
    if (!state.partner) return;
    destroyCharts();
    const seq = ++state.seq;
    const match = /^#\/campaigns\/(-?\d+)\/?$/.exec(location.hash);
    const run = match ? showCampaign(match[1], seq) : showCampaigns(seq);
    run.catch((err) => {
      if (seq === state.seq) showError(err.message);
    });
  }

  function showError(message) {
    const view = $('view');
    view.prepend(h('p', { class: 'notice notice-error', role: 'alert', testid: 'view-error' }, message));
  }

  function destroyCharts() {
    for (const chart of state.charts) chart.destroy();
    state.charts = [];
  }

  // ---- campaigns list ----

  async function showCampaigns(seq) {
    document.title = 'Campaigns · pushgate';
    const view = $('view');
    const from = h('input', { type: 'date', id: 'range-from', testid: 'date-from', value: state.range.from });
    const to = h('input', { type: 'date', id: 'range-to', testid: 'date-to', value: state.range.to });
    const search = h('input', {
      type: 'search',
      id: 'search',
      testid: 'search',
      placeholder: 'Name or ID',
      value: state.query,
      autocomplete: 'off',
    });
    const body = h('tbody');
    const head = h('tr');
    const table = h('table', { class: 'data data-compact clickable-rows', testid: 'campaigns-table' }, h('thead', {}, head), body);
    const summary = h('p', { class: 'muted summary', testid: 'campaigns-count', 'aria-live': 'polite' }, 'Loading campaigns…');

    const onRange = () => {
      if (!from.value || !to.value) return;
      state.range = { from: from.value, to: to.value };
      route();
    };
    from.addEventListener('change', onRange);
    to.addEventListener('change', onRange);
    search.addEventListener('input', () => {
      state.query = search.value;
      renderRows(body, summary);
    });

    for (const column of COLUMNS) {
      const button = h('button', { type: 'button', class: 'sort', onclick: () => sortBy(column.key, head, body, summary) },
        column.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }));
      head.append(h('th', { scope: 'col', class: column.type === 'text' ? '' : 'num', 'data-key': column.key, testid: `sort-${column.key}` }, button));
    }
    markSort(head);

    view.replaceChildren(
      h('section', { class: 'card toolbar' },
        h('div', { class: 'toolbar-title' },
          h('h1', {}, 'Campaigns'),
          h('p', { class: 'muted' }, `Campaigns first sent in the range; times in your time zone (${utcOffset()}).`)),
        h('div', { class: 'filters' },
          h('label', { class: 'field' }, h('span', {}, 'From'), from),
          h('label', { class: 'field' }, h('span', {}, 'To'), to),
          h('label', { class: 'field field-grow' }, h('span', {}, 'Search'), search),
          h('button', { type: 'button', class: 'button button-quiet', testid: 'refresh', onclick: route }, 'Refresh'))),
      h('section', { class: 'card' }, summary, h('div', { class: 'table-wrap' }, table)),
    );

    if (from.value > to.value) {
      summary.textContent = 'The start date is after the end date.';
      return;
    }
    const campaigns = await loadCampaigns(seq);
    if (campaigns === null || seq !== state.seq) return;
    state.campaigns = campaigns;
    renderRows(body, summary);
    const answer = await api('/dashboard/api/webhook');
    if (answer === null || seq !== state.seq) return;
    view.append(webhookCard(answer.webhook));
  }

  /** The partner's webhook (docs/api.md, "Webhooks"): where events go, and the last error. */
  function webhookCard(hook) {
    if (hook === null) {
      return h('section', { class: 'card', testid: 'webhook' },
        h('h2', {}, 'Webhook'),
        h('p', { class: 'muted', testid: 'webhook-state' }, 'No webhook: delivery events are not sent anywhere.'));
    }
    return h('section', { class: 'card', testid: 'webhook' },
      h('h2', {}, 'Webhook'),
      h('p', {}, h('code', { testid: 'webhook-url' }, hook.url)),
      h('p', { testid: 'webhook-state' }, hook.enabled ? 'Enabled' : 'Disabled'),
      h('p', { class: 'muted' }, `Events: ${hook.events.join(', ')}`),
      h('p', { class: hook.last_error ? 'notice notice-error' : 'muted', testid: 'webhook-error' },
        hook.last_error ? `Last error: ${hook.last_error}` : 'No error.'));
  }

  /** Every campaign of the range: pages of PER_PAGE until `total` is reached. */
  async function loadCampaigns(seq) {
    const byId = new Map();
    let total = Infinity;
    for (let page = 1; byId.size < total && page <= MAX_PAGES; page++) {
      const params = new URLSearchParams({
        from: String(dayStart(state.range.from)),
        to: String(dayStart(state.range.to, 1)), // `to` is exclusive: include the whole last day
        page: String(page),
        per_page: String(PER_PAGE),
      });
      const data = await api(`/dashboard/api/campaigns?${params}`);
      if (data === null || seq !== state.seq) return null;
      total = Number(data.total) || 0;
      const campaigns = Array.isArray(data.campaigns) ? data.campaigns : [];
      // Newest first: a campaign created while paging shifts older ones to the next page.
      for (const campaign of campaigns) byId.set(campaign.camp_id, campaign);
      if (campaigns.length < PER_PAGE) break;
    }
    return [...byId.values()];
  }

  function sortBy(key, head, body, summary) {
    const sort = state.sort;
    state.sort = sort.key === key ? { key, dir: sort.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: 'asc' };
    markSort(head);
    renderRows(body, summary);
  }

  function markSort(head) {
    for (const th of head.children) {
      const active = th.dataset.key === state.sort.key;
      if (active) th.setAttribute('aria-sort', state.sort.dir === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  function compare(a, b, column) {
    const x = a[column.key];
    const y = b[column.key];
    if (column.type === 'text') return String(x || '').localeCompare(String(y || ''), undefined, { sensitivity: 'base', numeric: true });
    if (column.type === 'date') return (Date.parse(x) || 0) - (Date.parse(y) || 0);
    return (Number(x) || 0) - (Number(y) || 0);
  }

  function renderRows(body, summary) {
    const column = COLUMNS.find((c) => c.key === state.sort.key) || COLUMNS[2];
    const sign = state.sort.dir === 'asc' ? 1 : -1;
    const query = state.query.trim().toLowerCase();
    const shown = state.campaigns
      .filter((c) => !query || String(c.camp_id).includes(query) || String(c.name || '').toLowerCase().includes(query))
      .sort((a, b) => sign * compare(a, b, column) || b.camp_id - a.camp_id);

    body.replaceChildren(...shown.map(campaignRow));
    const all = state.campaigns.length;
    summary.textContent = all === 0
      ? 'No campaigns were first sent in this range.'
      : query
        ? `${shown.length} of ${all} campaign${all === 1 ? '' : 's'} match${shown.length === 1 ? 'es' : ''} “${state.query.trim()}”.`
        : `${all} campaign${all === 1 ? '' : 's'}.`;
  }

  function campaignRow(c) {
    const href = `#/campaigns/${c.camp_id}`;
    const open = () => {
      location.hash = href;
    };
    const cells = COLUMNS.map((column) => {
      const value = c[column.key];
      if (column.key === 'camp_id') return h('td', { class: 'num' }, h('a', { href }, int(value)));
      if (column.key === 'name') return h('td', { class: 'name', 'data-col': 'name' }, value || '(no name)');
      if (column.key === 'created_at') return h('td', { class: 'num nowrap', 'data-col': 'created_at', title: value }, dateTime(value));
      if (column.type === 'rate') return h('td', { class: 'num', 'data-col': column.key }, rate(value));
      return h('td', { class: 'num', 'data-col': column.key }, int(value));
    });
    return h('tr', {
      testid: `campaign-row-${c.camp_id}`,
      tabindex: '0',
      onclick: (event) => {
        if (!event.target.closest('a')) open();
      },
      onkeydown: (event) => {
        if (event.key === 'Enter' && !event.target.closest('a')) open();
      },
    }, cells);
  }

  // ---- one campaign ----

  async function showCampaign(id, seq) {
    document.title = `Campaign ${id} · pushgate`;
    const view = $('view');
    const back = h('a', { class: 'back', href: '#/', testid: 'back' }, '← All campaigns');
    view.replaceChildren(back, h('p', { class: 'notice', testid: 'loading' }, `Loading campaign ${id}…`));

    let report;
    try {
      report = await api(`/dashboard/api/campaigns/${encodeURIComponent(id)}/report`);
    } catch (err) {
      if (seq !== state.seq) return;
      if (err.status === 404) {
        view.replaceChildren(back, h('p', { class: 'notice notice-error', role: 'alert', testid: 'view-error' },
          `Campaign ${id} was not found.`));
        return;
      }
      throw err;
    }
    if (report === null || seq !== state.seq) return;
    document.title = `${report.name || `Campaign ${id}`} · pushgate`;
    view.replaceChildren(back, ...campaignSections(report));
    drawCampaignCharts(report);
  }

  function campaignSections(r) {
    const funnel = r.funnel || {};
    const rates = r.rates || {};
    const pending = Number(funnel.pending) || 0;
    const scheduled = Number(funnel.scheduled) || 0; // part of pending

    const head = h('section', { class: 'card campaign-head' },
      h('div', { class: 'campaign-title' },
        h('p', { class: 'eyebrow' }, 'Campaign ', h('span', { testid: 'campaign-id' }, int(r.camp_id))),
        h('h1', { testid: 'campaign-name' }, r.name || '(no name)'),
        h('dl', { class: 'meta' },
          h('dt', {}, 'Title'), h('dd', { testid: 'campaign-title' }, r.title || '—'),
          h('dt', {}, 'Message'), h('dd', { testid: 'campaign-message' }, r.message || '—'),
          h('dt', {}, 'Created'), h('dd', { testid: 'campaign-created', title: r.created_at }, dateTime(r.created_at)))),
      h('div', { class: 'kpis' },
        kpi('Delivery rate', rate(rates.delivery_rate), 'rate-delivery', 'delivered / accepted'),
        kpi('Open rate', rate(rates.open_rate), 'rate-open', 'opened / delivered')));

    const sections = [head];
    if (pending > 0) {
      const later = scheduled > 0 ? ` (${scheduled} scheduled for later)` : '';
      sections.push(h('p', { class: 'notice', testid: 'pending-notice' },
        `${pending} send${pending === 1 ? ' is' : 's are'} still queued or being retried${later}. `,
        h('button', { type: 'button', class: 'link-button', onclick: route }, 'Refresh')));
    }

    const excluded = Object.entries(funnel.excluded || {});
    const numbers = h('dl', { class: 'numbers', testid: 'funnel-numbers' });
    for (const [key, label, help] of FUNNEL_NUMBERS) {
      numbers.append(h('div', { class: `number number-${key}` },
        h('dt', { title: help }, label), h('dd', { testid: `funnel-${key}` }, int(funnel[key]))));
      if (key === 'resolved' && excluded.length) {
        numbers.append(h('div', { class: 'number number-excluded' },
          h('dt', { title: 'requested users not sent to, per reason' }, 'Excluded'),
          h('dd', {}, h('ul', { class: 'reasons' }, excluded.map(([reason, count]) =>
            h('li', {}, `${reason}: `, h('span', { testid: `excluded-${reason}` }, int(count))))))));
      }
    }

    const grid = h('div', { class: 'grid' },
      h('section', { class: 'card' },
        h('h2', {}, 'Funnel'),
        chartBox('chart-funnel', 'Funnel bar chart'),
        numbers),
      h('section', { class: 'card' },
        h('h2', {}, 'Over time'),
        h('p', { class: 'muted' }, `Per hour, in your time zone (${utcOffset()}).`),
        chartBox('chart-series', 'Hourly accepted, delivered and opened'),
        (r.series || []).length ? null : h('p', { class: 'muted', testid: 'series-empty' }, 'Nothing counted yet.')),
      h('section', { class: 'card' },
        h('h2', {}, 'Platforms'),
        chartBox('chart-platforms', 'Queued per platform', 'chart-box chart-box-small'),
        platformTable(r.platforms || {})),
      h('section', { class: 'card' },
        h('h2', {}, 'Failures'),
        failTable(r.fail_records || [])));
    sections.push(grid);
    return sections;
  }

  function kpi(label, value, testid, help) {
    return h('div', { class: 'kpi' },
      h('span', { class: 'kpi-label' }, label),
      h('span', { class: 'kpi-value', testid }, value),
      h('span', { class: 'kpi-help muted' }, help));
  }

  function chartBox(testid, label, className) {
    return h('div', { class: className || 'chart-box' },
      h('canvas', { testid, role: 'img', 'aria-label': label }));
  }

  function platformTable(platforms) {
    const rows = PLATFORMS.map((p) => {
      const counts = platforms[p] || {};
      return h('tr', { testid: `platform-${p}` },
        h('th', { scope: 'row' }, h('span', { class: `swatch swatch-${p}`, 'aria-hidden': 'true' }), PLATFORM_LABELS[p]),
        PLATFORM_FIELDS.map((f) => h('td', { class: 'num', testid: `platform-${p}-${f}` }, int(counts[f]))));
    });
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'data', testid: 'platforms-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Platform'),
          PLATFORM_FIELDS.map((f) => h('th', { scope: 'col', class: 'num' }, f[0].toUpperCase() + f.slice(1))))),
        h('tbody', {}, rows)));
  }

  function failTable(records) {
    if (!records.length) return h('p', { class: 'muted', testid: 'fail-empty' }, 'No failures.');
    const rows = records.map((rec) => h('tr', { testid: `fail-row-${rec.name}` },
      h('th', { scope: 'row' }, rec.name),
      h('td', { class: 'num', testid: `fail-${rec.name}` }, int(rec.count)),
      h('td', { class: 'nowrap' }, Object.entries(rec.platforms || {}).map(([p, n]) => `${PLATFORM_LABELS[p] || p}: ${int(n)}`).join(', ')),
      h('td', { class: 'tokens' }, (rec.sample_tokens || []).map((t) => h('code', { title: t }, t)))));
    return h('div', { class: 'table-wrap' },
      h('table', { class: 'data', testid: 'fail-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Fail record'),
          h('th', { scope: 'col', class: 'num' }, 'Count'),
          h('th', { scope: 'col' }, 'Platforms'),
          h('th', { scope: 'col' }, 'Sample tokens'))),
        h('tbody', {}, rows)));
  }

  // ---- charts ----

  function chartsAvailable() {
    return typeof window.Chart === 'function';
  }

  function setupCharts() {
    if (!chartsAvailable()) return;
    const defaults = window.Chart.defaults;
    defaults.font.family = getComputedStyle(document.body).fontFamily;
    defaults.color = '#4b5563';
    defaults.borderColor = '#e5e7eb';
    defaults.maintainAspectRatio = false;
    if (window.matchMedia('(prefers-reduced-motion: reduce)').matches) defaults.animation = false;
  }

  function addChart(testid, config) {
    const canvas = document.querySelector(`canvas[data-testid="${testid}"]`);
    if (!canvas) return;
    const chart = new window.Chart(canvas, config);
    state.charts.push(chart);
    canvas.dataset.rendered = 'true';
  }

  function drawCampaignCharts(r) {
    if (!chartsAvailable()) {
      for (const canvas of document.querySelectorAll('canvas')) {
        canvas.parentElement.replaceWith(h('p', { class: 'muted' }, 'Charts are unavailable; the numbers are below.'));
      }
      return;
    }
    const funnel = r.funnel || {};
    addChart('chart-funnel', {
      type: 'bar',
      data: {
        labels: FUNNEL_CHART.map((k) => k[0].toUpperCase() + k.slice(1)),
        datasets: [{
          label: 'Users / sends',
          data: FUNNEL_CHART.map((k) => Number(funnel[k]) || 0),
          backgroundColor: FUNNEL_CHART.map((k) => COLORS[k]),
          borderRadius: 4,
        }],
      },
      options: {
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { grid: { display: false } } },
      },
    });

    const series = hourly(r.series || []);
    const single = series.labels.length === 1;
    addChart('chart-series', {
      type: 'line',
      data: {
        labels: series.labels,
        datasets: ['accepted', 'delivered', 'opened'].map((k) => ({
          label: k[0].toUpperCase() + k.slice(1),
          data: series.points.map((p) => Number(p[k]) || 0),
          borderColor: COLORS[k],
          backgroundColor: COLORS[k],
          pointRadius: single ? 5 : 2,
          pointHoverRadius: 6,
          tension: 0, // straight segments: a smoothed curve would overshoot the hourly counts
        })),
      },
      options: {
        interaction: { mode: 'index', intersect: false },
        plugins: { legend: { position: 'bottom' } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { offset: single, ticks: { maxRotation: 0, autoSkip: true } } },
      },
    });

    const platforms = r.platforms || {};
    const queued = PLATFORMS.map((p) => Number((platforms[p] || {}).queued) || 0);
    if (queued.some((n) => n > 0)) {
      addChart('chart-platforms', {
        type: 'doughnut',
        data: {
          labels: PLATFORMS.map((p) => PLATFORM_LABELS[p]),
          datasets: [{ label: 'Queued', data: queued, backgroundColor: PLATFORMS.map((p) => COLORS[p]) }],
        },
        options: {
          cutout: '60%',
          plugins: { legend: { position: window.innerWidth < 640 ? 'bottom' : 'right' } },
        },
      });
    } else {
      const canvas = document.querySelector('canvas[data-testid="chart-platforms"]');
      if (canvas) canvas.parentElement.replaceWith(h('p', { class: 'muted', testid: 'platforms-empty' }, 'Nothing queued.'));
    }
  }

  /**
   * The series lists only the hours with a count; a line over time needs the quiet hours as
   * zeros between them (unless that would mean thousands of points).
   */
  function hourly(series) {
    const points = series
      .map((p) => ({ ...p, t: Date.parse(p.hour) }))
      .filter((p) => !Number.isNaN(p.t))
      .sort((a, b) => a.t - b.t);
    let filled = points;
    if (points.length > 1) {
      const first = points[0].t;
      const last = points[points.length - 1].t;
      const hours = Math.round((last - first) / 3600e3) + 1;
      if (hours <= MAX_FILLED_HOURS) {
        const at = new Map(points.map((p) => [p.t, p]));
        filled = [];
        for (let i = 0; i < hours; i++) {
          const t = first + i * 3600e3;
          filled.push(at.get(t) || { t });
        }
      }
    }
    const days = new Set(filled.map((p) => localDay(new Date(p.t))));
    const labels = filled.map((p) => {
      const d = new Date(p.t);
      const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      return days.size > 1 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}` : time;
    });
    return { labels, points: filled };
  }

  // ---- start ----

  async function boot() {
    setupCharts();
    $('signin-form').addEventListener('submit', onSignIn);
    $('signout').addEventListener('click', onSignOut);
    window.addEventListener('hashchange', route);
    try {
      const session = await request('GET', '/dashboard/session');
      if (session.partner) signedIn(session.partner);
      else showSignIn('');
    } catch (err) {
      if (err.status === 401) showSignIn('');
      else {
        $('booting').textContent = `The dashboard cannot start: ${err.message}`;
        $('booting').classList.add('notice-error');
      }
    }
  }

  boot();
})();
