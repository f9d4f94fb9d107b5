// Yunzhou console: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";

  function drawCharts() {
    var data = document.getElementById("chart-data");
    if (!data || typeof window.echarts === "undefined") return;
    var chart = JSON.parse(data.textContent);
    var series = { cpu: chart.cpu_seconds, memory: chart.memory_mib };
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var kind = el.getAttribute("data-chart");
      var instance = window.echarts.init(el, null, { renderer: "svg" });
      instance.setOption({
        animation: false,
        grid: { left: 56, right: 16, top: 16, bottom: 48 },
        tooltip: { trigger: "axis" },
        xAxis: { type: "category", data: chart.instances, axisLabel: { rotate: 20 } },
        yAxis: { type: "value", name: chart.labels[kind] },
        series: [{ type: "bar", data: series[kind], itemStyle: { color: kind === "cpu" ? "#2f6fde" : "#1a9a6c" } }],
      });
      window.addEventListener("resize", function () { instance.resize(); });
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

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    followLogs();
  });
})();
