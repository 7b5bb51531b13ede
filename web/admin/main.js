// The admin dashboard (/admin): this node's last hour as charts, the
// busiest rooms, the cluster's nodes, and moderation. It polls
// /api/admin/stats (only the samples it does not have yet), /rooms and
// /nodes at the server's sample interval (5 s by default).
//
// Access is the API's: without an API key the server shows this page to
// loopback callers only, and every call works; with a key, the page asks
// for it, keeps it in sessionStorage (this tab only) and sends it as
// `Authorization: Bearer` on every call.

import { api, apiKey, ApiError } from './api.js';
import { createChart } from './charts.js';
import { renderNodes, renderRooms } from './tables.js';
import { setUpModeration } from './moderation.js';

const $ = (id) => document.getElementById(id);
const HOUR_MS = 3600 * 1000;
/** Polling bounds whatever the server's interval. */
const FASTEST_POLL_MS = 500;
const SLOWEST_POLL_MS = 5000;

const charts = [];
let samples = [];
let node = '';
let pollTimer = null;
let started = false;
let moderation = null;

function notify(text, isError = false) {
  const notice = $('notice');
  notice.textContent = text;
  notice.classList.toggle('error', isError);
  notice.hidden = false;
}

/** Shows why a call failed; a refused key sends the user back to the prompt. */
function fail(error) {
  if (error instanceof ApiError && error.status === 401) {
    askForKey(apiKey.current() ? 'The server refused this key (401 unauthorized): check it and try again.' : '');
    return;
  }
  const what = error instanceof ApiError ? `${error.message} (${error.status ? error.status + ' ' : ''}${error.code})` : String(error);
  notify(what, true);
}

function askForKey(message) {
  stopPolling();
  $('dashboard').hidden = true;
  $('key-panel').hidden = false;
  $('forget-key').hidden = true;
  const error = $('key-error');
  error.textContent = message;
  error.hidden = !message;
  $('key-input').value = '';
  $('key-input').focus();
}

function setUpCharts() {
  const host = $('charts');
  const add = (options) => charts.push(createChart(host, options));
  add({ title: 'Connections', series: [{ label: 'open', value: (s) => s.connections }] });
  add({ title: 'Messages stored per second', series: [{ label: 'msg/s', value: (s) => s.messages_per_sec }] });
  add({ title: 'Deliveries per second', series: [{ label: 'frames/s', value: (s) => s.deliveries_per_sec }] });
  add({
    title: 'Ack latency',
    unit: ' ms',
    series: [
      { label: 'p50', value: (s) => s.ack_ms.p50 },
      { label: 'p99', value: (s) => s.ack_ms.p99 },
      { label: 'p99.9', value: (s) => s.ack_ms.p999 },
    ],
  });
  add({
    title: 'Commit batch size',
    series: [
      { label: 'mean', value: (s) => s.commit_batch.mean },
      { label: 'max', value: (s) => s.commit_batch.max },
    ],
  });
  add({ title: 'Slow consumers dropped', series: [{ label: 'per interval', value: (s) => s.slow_consumer_drops }] });
  add({ title: 'Runtime tasks', series: [{ label: 'alive', value: (s) => s.tasks }] });
}

async function pollStats() {
  const since = samples.length ? `?since=${samples[samples.length - 1].ts}` : '';
  const answer = await api.get(`/api/admin/stats${since}`);
  if (answer.node !== node) samples = []; // another node answered (behind a balancer)
  node = answer.node;
  const cutoff = Date.now() - HOUR_MS;
  samples = samples.concat(answer.samples).filter((s) => s.ts >= cutoff);
  for (const chart of charts) chart.update(samples);
  return answer.interval_ms;
}

async function pollOnce() {
  const [interval, rooms, nodes] = await Promise.all([
    pollStats(),
    api.get('/api/admin/rooms'),
    api.get('/api/admin/nodes'),
  ]);
  renderRooms($('rooms-table'), $('rooms-empty'), rooms.rooms);
  renderNodes($('nodes-table'), nodes.nodes, node);
  $('node-line').textContent = `${node} · updated ${new Date().toLocaleTimeString()}`;
  return Math.min(SLOWEST_POLL_MS, Math.max(FASTEST_POLL_MS, interval));
}

async function poll() {
  pollTimer = null;
  let wait = SLOWEST_POLL_MS;
  try {
    wait = await pollOnce();
  } catch (error) {
    fail(error);
    if (error instanceof ApiError && error.status === 401) return;
  }
  if (started) pollTimer = setTimeout(poll, wait);
}

function stopPolling() {
  started = false;
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

/** Tries the key we have (or none); shows the dashboard if it works. */
async function start() {
  try {
    await api.get('/api/admin/nodes');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      askForKey(apiKey.current() ? 'The server refused this key (401 unauthorized): check it and try again.' : '');
    } else {
      fail(error);
    }
    return;
  }
  $('key-panel').hidden = true;
  $('dashboard').hidden = false;
  $('forget-key').hidden = !apiKey.current();
  $('notice').hidden = true;
  started = true;
  await poll();
  moderation.loadBans().catch(fail);
}

function main() {
  setUpCharts();
  moderation = setUpModeration({ notify, fail });
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) {
      askForKey('Enter the API key.');
      return;
    }
    apiKey.set(key);
    start();
  });
  $('forget-key').addEventListener('click', () => {
    apiKey.set('');
    askForKey('');
  });
  start();
}

main();
