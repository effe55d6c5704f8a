// Trend charts of the indicator dashboard (R-SUP-3), drawn with ECharts from the same JSON the API
// serves. A page marks a container with
//   data-trend="<url of /api/v1/analytics/indicators/trend>"
//   data-names='{"OFFICE": "办公室", …}'   department names by code ("*" is the platform)
//   data-labels='{"*": "…", "period": "…"}' words in the page's language
// and puts one element per indicator inside it: <div class="chart" data-indicator="usage_rate"
// data-percent="yes">. Under each chart the same numbers are written as a table, so nothing is
// only in the picture.
import * as echarts from "echarts/core";
import { LineChart } from "echarts/charts";
import { AriaComponent, GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import "./charts.css";

echarts.use([LineChart, GridComponent, LegendComponent, TooltipComponent, AriaComponent, CanvasRenderer]);

function format(value, percent) {
  if (value === null || value === undefined) return "—";
  return percent ? `${(100 * value).toFixed(1)}%` : value.toFixed(1);
}

function table(periods, rows, labels, percent) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = labels.table || "Table";
  details.appendChild(summary);
  const t = document.createElement("table");
  t.className = "data";
  const head = t.createTHead().insertRow();
  const corner = document.createElement("th");
  corner.scope = "col";
  corner.textContent = labels.period || "";
  head.appendChild(corner);
  periods.forEach((p) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = p.name;
    head.appendChild(th);
  });
  const body = t.createTBody();
  rows.forEach(({ name, values }) => {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = name;
    tr.appendChild(th);
    values.forEach((v) => {
      tr.insertCell().textContent = format(v, percent);
    });
  });
  details.appendChild(t);
  return details;
}

async function draw(container) {
  const response = await fetch(container.dataset.trend, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    container.dataset.state = "failed";
    return;
  }
  const data = await response.json();
  const names = JSON.parse(container.dataset.names || "{}");
  const labels = JSON.parse(container.dataset.labels || "{}");
  container.querySelectorAll(".chart[data-indicator]").forEach((el) => {
    const percent = el.dataset.percent === "yes";
    const series = data.series[el.dataset.indicator] || {};
    const rows = Object.keys(series).sort((a, b) => (a === "*") - (b === "*") || a.localeCompare(b))
      .map((code) => ({ name: code === "*" ? labels["*"] || code : names[code] || code, values: series[code] }));
    const chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false, // the picture is final at once (and screenshots show it)
      aria: { enabled: true },
      tooltip: { trigger: "axis", valueFormatter: (v) => format(v, percent) },
      legend: { type: "scroll", bottom: 0 },
      grid: { left: 48, right: 16, top: 16, bottom: 48 },
      xAxis: { type: "category", data: data.periods.map((p) => p.label) },
      yAxis: { type: "value", min: 0, max: percent ? 1 : undefined,
               axisLabel: { formatter: (v) => (percent ? `${Math.round(v * 100)}%` : String(v)) } },
      series: rows.map((r) => ({ name: r.name, type: "line", connectNulls: false, data: r.values })),
    });
    window.addEventListener("resize", () => chart.resize());
    el.insertAdjacentElement("afterend", table(data.periods, rows, labels, percent));
  });
  container.dataset.state = "drawn";
}

document.querySelectorAll("[data-trend]").forEach((container) => {
  draw(container).catch(() => {
    container.dataset.state = "failed";
  });
});
