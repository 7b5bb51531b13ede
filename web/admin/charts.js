// Small SVG line charts for the dashboard's history.
//
// Drawn here rather than with a chart library: the server embeds web/ as
// plain files with no build step, so a library would be a vendored copy of
// hundreds of kilobytes for what is a few polylines, two axes and a readout.
//
// Each chart is an <svg role="img"> with a <title> and a <desc> that says
// the latest values (what a screen reader announces), a legend that reads
// out the latest sample, or the one under the pointer (or the one picked
// with the arrow keys once the chart has focus).

const NS = 'http://www.w3.org/2000/svg';
const WIDTH = 320;
const HEIGHT = 150;
const PAD = { left: 40, right: 8, top: 10, bottom: 22 };

function svg(name, attrs = {}) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** A round upper bound for the y axis: 1, 2 or 5 times a power of ten. */
export function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

export function formatValue(value, unit = '') {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toFixed(digits) + unit;
}

const clock = (ts) => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
const clockSeconds = (ts) => new Date(ts).toLocaleTimeString();

let ids = 0;

/**
 * A chart in `container`: `series` are `{label, value(sample)}`, a value
 * null where a sample has none (no acks in that interval).
 */
export function createChart(container, { title, unit = '', series }) {
  const id = `chart-${++ids}`;
  const figure = document.createElement('figure');
  figure.className = 'chart';
  figure.dataset.chart = title;
  const caption = document.createElement('figcaption');
  caption.id = `${id}-caption`;
  caption.textContent = title;
  const root = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    tabindex: 0,
    'aria-labelledby': `${id}-title ${id}-desc`,
  });
  const titleNode = svg('title', { id: `${id}-title` });
  titleNode.textContent = title;
  const desc = svg('desc', { id: `${id}-desc` });
  root.append(titleNode, desc);
  const grid = svg('g', { class: 'grid' });
  const lines = svg('g', { class: 'lines' });
  const cursor = svg('line', { class: 'cursor', y1: PAD.top, y2: HEIGHT - PAD.bottom, visibility: 'hidden' });
  root.append(grid, lines, cursor);
  const paths = series.map((_, i) => {
    const path = svg('path', { class: `series series-${i}`, fill: 'none' });
    lines.append(path);
    return path;
  });
  const legend = document.createElement('dl');
  legend.className = 'readout';
  const readouts = series.map((s, i) => {
    const dt = document.createElement('dt');
    const swatch = document.createElement('span');
    swatch.className = `swatch series-${i}`;
    dt.append(swatch, document.createTextNode(s.label));
    const dd = document.createElement('dd');
    dd.textContent = '–';
    legend.append(dt, dd);
    return dd;
  });
  const when = document.createElement('p');
  when.className = 'when';
  figure.append(caption, root, legend, when);
  container.append(figure);

  let samples = [];
  let picked = null; // index under the pointer or chosen by keyboard
  let xOf = () => 0;

  function readout(index) {
    const sample = samples[index];
    series.forEach((s, i) => {
      readouts[i].textContent = sample ? formatValue(s.value(sample), unit) : '–';
    });
    when.textContent = sample ? (index === samples.length - 1 && picked === null ? 'latest, ' : '') + clockSeconds(sample.ts) : 'no samples yet';
    if (picked === null || !sample) {
      cursor.setAttribute('visibility', 'hidden');
    } else {
      const x = xOf(sample.ts);
      cursor.setAttribute('x1', x);
      cursor.setAttribute('x2', x);
      cursor.setAttribute('visibility', 'visible');
    }
  }

  function draw(next) {
    samples = next;
    grid.replaceChildren();
    const values = samples.flatMap((sample) => series.map((s) => s.value(sample))).filter((v) => v !== null && v !== undefined);
    const top = niceCeiling(Math.max(0, ...values));
    const first = samples.length ? samples[0].ts : Date.now();
    const last = samples.length ? samples[samples.length - 1].ts : first + 1;
    const span = Math.max(1, last - first);
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    xOf = (ts) => PAD.left + ((ts - first) / span) * plotW;
    const yOf = (v) => PAD.top + plotH - (v / top) * plotH;
    for (const tick of [0, top / 2, top]) {
      const y = yOf(tick);
      grid.append(svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: tick === 0 ? 'axis' : 'rule' }));
      const label = svg('text', { x: PAD.left - 4, y: y + 3, 'text-anchor': 'end', class: 'tick' });
      label.textContent = formatValue(tick);
      grid.append(label);
    }
    grid.append(svg('line', { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: HEIGHT - PAD.bottom, class: 'axis' }));
    if (samples.length) {
      for (const [ts, anchor] of [[first, 'start'], [last, 'end']]) {
        const label = svg('text', { x: xOf(ts), y: HEIGHT - 6, 'text-anchor': anchor, class: 'tick' });
        label.textContent = clock(ts);
        grid.append(label);
      }
    }
    series.forEach((s, i) => {
      let d = '';
      let pen = 'M';
      for (const sample of samples) {
        const v = s.value(sample);
        if (v === null || v === undefined) {
          pen = 'M'; // a gap: no value in this interval
          continue;
        }
        // `h0` after a move: a dot, should the next sample have no value.
        d += pen === 'M' ? `M${xOf(sample.ts).toFixed(1)},${yOf(v).toFixed(1)}h0` : `L${xOf(sample.ts).toFixed(1)},${yOf(v).toFixed(1)}`;
        pen = 'L';
      }
      paths[i].setAttribute('d', d);
    });
    const latest = samples[samples.length - 1];
    desc.textContent = latest
      ? `Latest: ${series.map((s) => `${s.label} ${formatValue(s.value(latest), unit)}`).join(', ')}.`
      : 'No samples yet.';
    figure.dataset.points = String(samples.length);
    if (picked !== null && picked >= samples.length) picked = null;
    readout(picked ?? samples.length - 1);
  }

  function pick(index) {
    picked = index;
    readout(index ?? samples.length - 1);
  }

  root.addEventListener('pointermove', (event) => {
    if (!samples.length) return;
    const box = root.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * WIDTH;
    let best = 0;
    samples.forEach((sample, i) => {
      if (Math.abs(xOf(sample.ts) - x) < Math.abs(xOf(samples[best].ts) - x)) best = i;
    });
    pick(best);
  });
  root.addEventListener('pointerleave', () => pick(null));
  root.addEventListener('blur', () => pick(null));
  root.addEventListener('keydown', (event) => {
    if (!samples.length) return;
    const at = picked ?? samples.length - 1;
    const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -samples.length, End: samples.length };
    if (!(event.key in moves)) {
      if (event.key === 'Escape') pick(null);
      return;
    }
    event.preventDefault();
    pick(Math.min(samples.length - 1, Math.max(0, at + moves[event.key])));
  });

  draw([]);
  return { update: draw };
}
