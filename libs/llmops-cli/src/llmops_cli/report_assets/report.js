// Draws every chart of the report from the inline JSON (no network, no innerHTML of data)
// and marks each chart element with data-points = the points, bars, values or rows drawn.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#2a6fdb", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4",
                "#525df4", "#bf399e", "#6c8893", "#ee6868"];
  var W = 640, H = 240, L = 64, R = 12, T = 10, B = 28;
  var data = JSON.parse(document.getElementById("report-data").textContent);

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function html(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function num(v, digits) {
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || v === Math.round(v)) return String(Math.round(v));
    return v.toPrecision(digits || 3);
  }
  function fmt(v, unit) {
    if (v === null || v === undefined) return "–";
    if (unit === "percentunit") return num(v * 100) + "%";
    if (unit === "ms") return Math.abs(v) >= 1000 ? num(v / 1000) + " s" : num(v) + " ms";
    if (unit === "cps") return num(v) + "/s";
    if (unit.indexOf("suffix:") === 0) return num(v) + unit.slice(7);
    return num(v);
  }
  function fmtTime(ms, withDate) {
    var iso = new Date(ms).toISOString();
    return withDate ? iso.slice(0, 16).replace("T", " ") : iso.slice(11, 16);
  }
  function noData(chart) {
    chart.appendChild(html("p", "nodata", "No data in this range"));
    return 0;
  }
  function yScale(lo, hi) {
    if (lo === hi) { hi = lo + 1; lo = Math.min(0, lo); }
    return function (v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
  }
  function yAxis(svg, lo, hi, unit) {
    var y = yScale(lo, hi);
    for (var i = 0; i <= 4; i++) {
      var v = lo + (hi - lo) * i / 4;
      svg.appendChild(el("line", {"class": "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v)}));
      svg.appendChild(el("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, fmt(v, unit)));
    }
    return y;
  }

  function timeseries(chart, p) {
    var series = p.series.filter(function (s) { return s.points.length > 0; });
    if (!series.length) return noData(chart);
    var x0 = data.range[0], x1 = data.range[1], lo = 0, hi = -Infinity, drawn = 0;
    series.forEach(function (s) {
      s.points.forEach(function (pt) {
        lo = Math.min(lo, pt[1]); hi = Math.max(hi, pt[1]);
        x0 = Math.min(x0, pt[0]); x1 = Math.max(x1, pt[0]);
      });
    });
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img"});
    var y = yAxis(svg, lo, hi, p.unit);
    var x = function (t) { return L + (W - L - R) * (t - x0) / Math.max(x1 - x0, 1); };
    var days = x1 - x0 > 36 * 3600 * 1000;
    for (var i = 0; i <= 4; i++) {
      var t = x0 + (x1 - x0) * i / 4;
      svg.appendChild(el("text", {x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle"},
                         fmtTime(t, days)));
    }
    svg.appendChild(el("line", {"class": "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
    var legend = html("div", "legend");
    series.forEach(function (s, k) {
      var color = COLORS[k % COLORS.length];
      var pts = s.points.map(function (pt) { return x(pt[0]).toFixed(1) + "," + y(pt[1]).toFixed(1); });
      if (pts.length > 1) {
        svg.appendChild(el("polyline", {points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.8}));
      }
      s.points.forEach(function (pt) {
        var dot = el("circle", {cx: x(pt[0]), cy: y(pt[1]), r: pts.length > 1 ? 1.8 : 3.5, fill: color});
        dot.appendChild(el("title", {}, s.name + ": " + fmt(pt[1], p.unit) + " at " + fmtTime(pt[0], true)));
        svg.appendChild(dot);
        drawn++;
      });
      var item = html("span", "", s.name);
      item.style.setProperty("--c", color);
      legend.appendChild(item);
    });
    chart.appendChild(svg);
    chart.appendChild(legend);
    return drawn;
  }

  function barchart(chart, p) {
    var bars = p.bars.filter(function (b) { return b.value !== null; });
    if (!bars.length) return noData(chart);
    var hi = Math.max.apply(null, bars.map(function (b) { return b.value; }).concat([0]));
    var lo = Math.min.apply(null, bars.map(function (b) { return b.value; }).concat([0]));
    var row = 24, left = 220, h = T + bars.length * row + 8;
    var svg = el("svg", {viewBox: "0 0 " + W + " " + h, role: "img"});
    var scale = function (v) { return left + (W - left - 70) * (v - lo) / Math.max(hi - lo, 1e-12); };
    bars.forEach(function (b, k) {
      var yy = T + k * row, color = COLORS[k % COLORS.length];
      var label = b.label.length > 34 ? b.label.slice(0, 33) + "…" : b.label;
      svg.appendChild(el("text", {x: left - 6, y: yy + 15, "text-anchor": "end"}, label));
      var rect = el("rect", {x: scale(Math.min(0, b.value)), y: yy + 3, height: row - 8,
                             width: Math.max(Math.abs(scale(b.value) - scale(0)), 1), fill: color});
      rect.appendChild(el("title", {}, b.label + ": " + fmt(b.value, p.unit)));
      svg.appendChild(rect);
      svg.appendChild(el("text", {x: scale(Math.max(0, b.value)) + 4, y: yy + 15}, fmt(b.value, p.unit)));
    });
    chart.appendChild(svg);
    return bars.length;
  }

  function stat(chart, p) {
    var values = p.stats.filter(function (s) { return s.value !== null; });
    if (!values.length) return noData(chart);
    var box = html("div", "stats");
    values.forEach(function (s) {
      var item = html("div", "stat");
      item.appendChild(html("div", "value", fmt(s.value, p.unit)));
      item.appendChild(html("div", "label", s.label));
      box.appendChild(item);
    });
    chart.appendChild(box);
    return values.length;
  }

  function table(chart, p) {
    if (!p.rows.length) return noData(chart);
    var wrap = html("div", "table-wrap"), tbl = html("table"), head = html("tr");
    p.columns.forEach(function (c) { head.appendChild(html("th", "", c)); });
    tbl.appendChild(head);
    p.rows.forEach(function (r) {
      var tr = html("tr");
      r.forEach(function (v, i) {
        var text = v !== null && typeof v === "object" ? fmtTime(v.t, true)
                 : typeof v === "number" ? fmt(v, p.units[i]) : v === null ? "–" : v;
        tr.appendChild(html("td", "", text));
      });
      tbl.appendChild(tr);
    });
    wrap.appendChild(tbl);
    chart.appendChild(wrap);
    return p.rows.length;
  }

  var draw = {timeseries: timeseries, barchart: barchart, stat: stat, table: table};
  var charts = document.querySelectorAll(".chart[data-panel]");
  for (var i = 0; i < charts.length; i++) {
    var chart = charts[i], p = data.panels[chart.getAttribute("data-panel")];
    var points = 0;
    try {
      points = p ? draw[p.kind](chart, p) : noData(chart);
    } catch (err) {
      chart.appendChild(html("p", "error", "Could not draw this chart: " + err));
      chart.setAttribute("data-error", String(err));
    }
    chart.setAttribute("data-points", String(points));
    chart.setAttribute("data-rendered", "true");
  }
  document.body.setAttribute("data-charts-rendered", String(charts.length));
})();
