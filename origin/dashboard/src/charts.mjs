// A live time-series chart on uPlot: it keeps its own history (the last `MAX_POINTS` ticks),
// takes one value per series at each tick, grows a series when a new one shows up (a route
// first requested), and draws an alert threshold as a dashed line with its label.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** Ticks kept: 5 minutes at one tick every 2 s. */
export const MAX_POINTS = 150;

/** The shortest time span a chart shows, seconds. */
const MIN_SPAN_S = 60;

const COLOURS = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728",
];

/** Value formats for axes and legends. */
export const FORMATS = {
  percent: (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`),
  ms: (v) => (v == null ? "–" : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toPrecision(2)} ms`),
  perSecond: (v) => (v == null ? "–" : v >= 100 ? `${v.toFixed(0)}/s` : `${v.toPrecision(2)}/s`),
  plain: (v) => (v == null ? "–" : `${v}`),
};

/** A uPlot plugin drawing a dashed horizontal line at `value` (in the `y` scale). */
function thresholdLine(value, label) {
  return {
    hooks: {
      draw: (u) => {
        const dpr = window.devicePixelRatio || 1;
        const y = Math.round(u.valToPos(value, "y", true));
        const { ctx, bbox } = u;
        ctx.save();
        ctx.strokeStyle = "#d62728";
        ctx.fillStyle = "#d62728";
        ctx.lineWidth = dpr;
        ctx.setLineDash([6 * dpr, 4 * dpr]);
        ctx.beginPath();
        ctx.moveTo(bbox.left, y);
        ctx.lineTo(bbox.left + bbox.width, y);
        ctx.stroke();
        ctx.font = `${11 * dpr}px sans-serif`;
        ctx.fillText(label, bbox.left + 4 * dpr, y - 4 * dpr);
        ctx.restore();
      },
    },
  };
}

export class TimeChart {
  /**
   * @param {HTMLElement} element where the chart goes
   * @param {object} options
   * @param {string} options.title
   * @param {(v: number|null) => string} options.format axis and legend values
   * @param {{value: number, label: string}} [options.threshold] an alert line
   * @param {[number, number]} [options.range] a fixed y range (else from 0 to the largest
   *   value, the threshold included)
   */
  constructor(element, { title, format, threshold, range }) {
    this.element = element;
    this.options = { title, format, threshold, range };
    this.times = [];
    /** @type {Map<string, (number|null)[]>} */
    this.series = new Map();
    this.plot = null;
  }

  /** Adds one tick at `time` (seconds since the epoch): `values` maps series to a value. */
  push(time, values) {
    this.times.push(time);
    for (const [name, value] of Object.entries(values)) {
      if (!this.series.has(name)) this.series.set(name, this.times.map(() => null));
    }
    for (const [name, column] of this.series) {
      const value = values[name];
      column[this.times.length - 1] = value == null || !Number.isFinite(value) ? null : value;
    }
    if (this.times.length > MAX_POINTS) {
      this.times.shift();
      for (const column of this.series.values()) column.shift();
    }
    this.draw();
  }

  /** Per series, the points held that are not gaps and the newest value (`null`: a gap):
   * what the end-to-end test reads. */
  summary() {
    const summary = {};
    for (const [name, column] of this.series) {
      summary[name] = { points: column.filter((v) => v != null).length, last: column[column.length - 1] };
    }
    return summary;
  }

  draw() {
    const data = [this.times, ...this.series.values()];
    const names = [...this.series.keys()];
    if (this.plot && this.plot.series.length === names.length + 1) {
      this.plot.setData(data);
      this.showNewest();
      return;
    }
    // A new series: uPlot's series are fixed at creation, and a chart is cheap to make again.
    this.plot?.destroy();
    const { title, format, threshold, range } = this.options;
    this.plot = new uPlot(
      {
        title,
        width: this.width(),
        height: 220,
        plugins: threshold ? [thresholdLine(threshold.value, threshold.label)] : [],
        scales: {
          // A minute at least, the newest tick at the right edge: the first seconds' points
          // are not stretched over the whole width.
          x: { time: true, range: (_, min, max) => [Math.min(min, max - MIN_SPAN_S), max] },
          y: {
            range: range
              ? () => range
              : (_, _min, max) => [0, Math.max(max ?? 0, (threshold?.value ?? 0) * 1.15) || 1],
          },
        },
        axes: [{}, { values: (_, ticks) => ticks.map(format), size: 70 }],
        series: [
          {},
          ...names.map((name, i) => ({
            label: name,
            stroke: COLOURS[i % COLOURS.length],
            width: 1.5,
            spanGaps: false,
            value: (_, v) => format(v),
          })),
        ],
      },
      data,
      this.element,
    );
    this.showNewest();
  }

  /** The legend shows the newest values, unless the pointer is over the chart. */
  showNewest() {
    if (this.plot.cursor.idx == null && this.times.length > 0) {
      this.plot.setLegend({ idx: this.times.length - 1 }, false);
    }
  }

  width() {
    return Math.max(300, this.element.clientWidth || 480);
  }

  /** Follows the element's width (after a window resize). */
  resize() {
    this.plot?.setSize({ width: this.width(), height: 220 });
  }
}
