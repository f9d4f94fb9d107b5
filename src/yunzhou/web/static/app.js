// Yunzhou console: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";

  // Metrics tab: one ECharts line chart per [data-chart]; refreshed from data-url while the tab is open.
  var COLORS = ["#2f6fde", "#d9480f", "#1a9a6c", "#7048e8"];

  function shortNumber(value) {
    var abs = Math.abs(value);
    if (abs >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (abs >= 1e3) return (value / 1e3).toFixed(1) + "k";
    if (abs >= 10 || abs === 0) return String(Math.round(value));
    return String(Number(value.toPrecision(2)));
  }

  function chartOption(chart, narrow, longWindow, data) {
    return {
      animation: false,
      color: COLORS,
      grid: { left: 8, right: 12, top: chart.series.length > 1 ? 28 : 12, bottom: 8, containLabel: true },
      legend: chart.series.length > 1 ? { top: 0, itemWidth: 14, itemHeight: 8 } : { show: false },
      tooltip: { trigger: "axis", confine: true, valueFormatter: function (v) {
        return v === null || v === undefined ? "—" : shortNumber(v) + " " + chart.unit;
      } },
      xAxis: { type: "time", min: data.start_ms, max: data.end_ms, axisLabel: { hideOverlap: true, fontSize: narrow ? 10 : 12,
        formatter: longWindow ? "{MM}-{dd}" : "{HH}:{mm}" }, splitLine: { show: false } },
      yAxis: { type: "value", min: 0, splitNumber: narrow ? 3 : 5,
        axisLabel: { fontSize: narrow ? 10 : 12, formatter: shortNumber } },
      series: chart.series.map(function (line) {
        // a lone sample between gaps draws no line: show dots while the series is sparse
        var samples = line.points.filter(function (p) { return p[1] !== null; }).length;
        return { type: "line", name: line.name, data: line.points, showSymbol: samples < 30, symbolSize: 5,
          connectNulls: false, lineStyle: { width: 2 } };
      }),
    };
  }

  function metricsTab() {
    var root = document.getElementById("metrics");
    var source = document.getElementById("metrics-data");
    if (!root || !source || typeof window.echarts === "undefined") return;
    var locale = root.getAttribute("data-lang") === "zh-CN" ? "ZH" : "EN";
    var longWindow = ["24h", "7d"].indexOf(root.getAttribute("data-window")) >= 0;
    var charts = {};

    function render(data) {
      var narrow = window.innerWidth < 640;
      document.getElementById("metrics-empty").hidden = !!data.has_data;
      document.getElementById("metrics-charts").hidden = !data.has_data;
      data.charts.forEach(function (chart) {
        var el = root.querySelector('[data-chart="' + chart.key + '"]');
        if (!el) return;
        if (!charts[chart.key]) charts[chart.key] = window.echarts.init(el, null, { renderer: "svg", locale: locale });
        charts[chart.key].setOption(chartOption(chart, narrow, longWindow, data), true);
        charts[chart.key].resize();
        el.setAttribute("data-samples", String(chart.samples));  // tests poll this
        chart.series.forEach(function (line, i) {
          var cell = root.querySelector('[data-latest="' + chart.key + "-" + i + '"]');
          if (cell) cell.textContent = (line.latest === null ? "—" : shortNumber(line.latest)) + " " + chart.unit;
        });
      });
    }

    render(JSON.parse(source.textContent));
    var stale = document.getElementById("metrics-stale");
    var every = parseInt(root.getAttribute("data-refresh-ms"), 10) || 30000;
    setInterval(function () {
      if (document.hidden) return;  // only while the tab is visible
      fetch(root.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
        .then(function (data) {
          if (!data.charts) throw new Error("unavailable");
          render(data);
          stale.hidden = true;
        })
        .catch(function () { stale.hidden = false; });
    }, every);
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (key) { charts[key].resize(); });
    });
  }

  // Keep the newest log line in view while following, unless the reader scrolled up.
  function followLogs() {
    var box = document.getElementById("log-lines");
    if (!box) return;
    var pinned = true;
    box.addEventListener("scroll", function () {
      pinned = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
    });
    document.body.addEventListener("htmx:afterSwap", function () {
      if (pinned) box.scrollTop = box.scrollHeight;
    });
    box.scrollTop = box.scrollHeight;
  }

  // Copy buttons ([data-copy], e.g. a custom domain's TXT value): shown only where the clipboard API is.
  function copyButtons() {
    if (!navigator.clipboard) return;
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
          button.textContent = button.getAttribute("data-copied");
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    metricsTab();
    followLogs();
    copyButtons();
  });
})();
