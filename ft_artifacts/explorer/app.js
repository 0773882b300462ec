// The ft-artifacts explorer: hash routes in, views out. Data files are scripts that set
// window.__FT_DATA__[key]; they are added on demand, so each view loads only what it shows.
// Token strings come from the artifact and are untrusted: they only ever reach the page as
// text nodes (textContent), never as markup.
"use strict";

(function () {
  const DATA = window.__FT_DATA__ = window.__FT_DATA__ || {};
  const META = DATA.meta;
  const view = document.getElementById("view");
  const pending = {};

  // --- data -----------------------------------------------------------------------------------
  function load(key) {
    if (key in DATA) return Promise.resolve(DATA[key]);
    if (!pending[key]) {
      pending[key] = new Promise(function (resolve, reject) {
        const script = document.createElement("script");
        script.src = "data/" + key + ".js";
        script.onload = function () { key in DATA ? resolve(DATA[key]) : reject(new Error("no data in " + key)); };
        script.onerror = function () { delete pending[key]; reject(new Error("cannot load data/" + key + ".js")); };
        document.head.appendChild(script);
      });
    }
    return pending[key];
  }

  let vocabIndex = null;  // token -> id, built once from data/vocab.js
  function vocab() {
    return load("vocab").then(function (tokens) {
      if (!vocabIndex) {
        vocabIndex = new Map();
        tokens.forEach(function (t, i) { vocabIndex.set(t, i); });
      }
      return tokens;
    });
  }

  // --- DOM helpers: text only ------------------------------------------------------------------
  function el(tag, attrs) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k === "href") node.setAttribute("href", v);
      else if (k.startsWith("data-") || k === "title" || k === "id") node.setAttribute(k, String(v));
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    }
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  function token(t) { return el("span", {"class": "token"}, t === null || t === undefined ? "—" : t); }
  function wordLink(t) { return el("a", {href: "#/word/" + encodeURIComponent(t), "class": "tok-link"}, token(t)); }
  function neuronLink(name) { return el("a", {href: "#/neuron/" + name, "class": "neuron-link"}, name); }
  function groupHref(word, selection, k) { return "#/group/" + encodeURIComponent(word) + "/" + selection + "/" + k; }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "—";
    return Number(v).toFixed(digits === undefined ? 4 : digits);
  }
  function num(v, digits, field) {  // a number cell: shown rounded, the exact value in data-value
    return el("td", {"class": "num", "data-value": v === null || v === undefined ? "" : String(v), "data-field": field},
      fmt(v, digits));
  }
  function pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%"; }
  function table(head, rows, attrs) {
    return el("table", attrs || {}, el("thead", {}, el("tr", {}, head.map(function (h) {
      return el("th", {"class": h.num ? "num" : ""}, h.label || h);
    }))), el("tbody", {}, rows));
  }
  function flags(diverged, collapsed) {
    const out = [];
    if (diverged) out.push(el("span", {"class": "flag bad", "data-flag": "diverged"}, "diverged"));
    if (collapsed) out.push(el("span", {"class": "flag warn", "data-flag": "collapsed"}, "collapsed late"));
    return out;
  }
  function show(title, nodes) {
    document.title = title + " · ft-artifacts explorer";
    view.replaceChildren();
    append(view, nodes);
  }

  // --- SVG charts (drawn here, no library) --------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const COLORS = ["#2458b3", "#c2571a", "#2e8b57", "#8e44ad"];
  function lineChart(series, opts) {
    const w = opts.width || 520, h = opts.height || 200, m = {l: 52, r: 12, t: 12, b: 34};
    const pts = series.flatMap(function (s) { return s.points.filter(function (p) { return p[1] !== null; }); });
    const root = svg("svg", {"class": "chart " + (opts.cls || ""), width: w, height: h, viewBox: "0 0 " + w + " " + h,
                             role: "img"});
    if (!pts.length) { root.appendChild(svg("text", {x: 10, y: 20}, "no finite values")); return root; }
    const tx = opts.logx ? Math.log : function (x) { return x; };
    let x0 = Math.min.apply(null, pts.map(function (p) { return tx(p[0]); }));
    let x1 = Math.max.apply(null, pts.map(function (p) { return tx(p[0]); }));
    let y0 = Math.min.apply(null, pts.map(function (p) { return p[1]; }).concat(opts.ymin === undefined ? [] : [opts.ymin]));
    let y1 = Math.max.apply(null, pts.map(function (p) { return p[1]; }).concat(opts.ymax === undefined ? [] : [opts.ymax]));
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    const X = function (x) { return m.l + (tx(x) - x0) / (x1 - x0) * (w - m.l - m.r); };
    const Y = function (y) { return h - m.b - (y - y0) / (y1 - y0) * (h - m.t - m.b); };
    root.appendChild(svg("line", {x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b, stroke: "#999"}));
    root.appendChild(svg("line", {x1: m.l, y1: m.t, x2: m.l, y2: h - m.b, stroke: "#999"}));
    [y0, (y0 + y1) / 2, y1].forEach(function (y) {
      root.appendChild(svg("text", {x: m.l - 4, y: Y(y) + 4, "text-anchor": "end"}, Number(y.toPrecision(3)).toString()));
    });
    (opts.xticks || [series[0].points[0][0], series[0].points[series[0].points.length - 1][0]]).forEach(function (x) {
      root.appendChild(svg("text", {x: X(x), y: h - m.b + 14, "text-anchor": "middle"}, String(x)));
    });
    if (opts.xlabel) root.appendChild(svg("text", {x: (w + m.l) / 2, y: h - 4, "text-anchor": "middle"}, opts.xlabel));
    series.forEach(function (s, i) {
      const color = COLORS[i % COLORS.length];
      const ok = s.points.filter(function (p) { return p[1] !== null; });
      root.appendChild(svg("polyline", {fill: "none", stroke: color, "stroke-width": 1.8,
        points: ok.map(function (p) { return X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1); }).join(" ")}));
      if (opts.dots) ok.forEach(function (p) { root.appendChild(svg("circle", {cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: color})); });
      if (s.name) root.appendChild(svg("text", {x: w - m.r - 4, y: m.t + 12 + 13 * i, "text-anchor": "end", fill: color}, s.name));
    });
    return root;
  }
  function traceChart(trace, final) {
    const every = (META.settings.optim || {}).trace_every;
    const points = (trace || []).map(function (v, i) { return [i, v]; });
    if (!points.length) return el("p", {"class": "muted"}, "no trace recorded");
    return el("figure", {}, lineChart([{points: points}], {cls: "trace", dots: points.length < 60,
      xlabel: "trace point" + (every ? " (every " + every + " steps)" : "")}),
      el("figcaption", {"class": "muted"}, "final activation " + fmt(final)));
  }

  // --- views ------------------------------------------------------------------------------------------
  function overview() {
    if (!META.report) return overviewWithoutReport();
    const model = META.model, r = META.report, t1 = r.table1, p1 = r.paper.table1;
    const cards = el("div", {"class": "cards"},
      el("div", {}, el("div", {"class": "muted"}, "model"), el("div", {"class": "big", id: "ov-model"}, model.id),
         el("div", {"class": "muted"}, model.num_layers + " layers × " + model.hidden_size + ", vocabulary " + model.vocab_size)),
      el("div", {}, el("div", {"class": "muted"}, "steps"), el("div", {"class": "big"}, String((META.settings.optim || {}).steps))),
      el("div", {}, el("div", {"class": "muted"}, "build"), el("div", {"class": "big"}, META.build_id)));
    const counts = table(["config", {label: "rows", num: true}, {label: "diverged", num: true},
                          {label: "collapsed late", num: true}, {label: "never above 0", num: true}],
      Object.keys(META.rows).map(function (c) {
        const opt = c === "neurons" || c === "word_groups";
        return el("tr", {"data-config": c}, el("td", {}, c), el("td", {"class": "num", "data-field": "rows"}, String(META.rows[c])),
          el("td", {"class": "num", "data-field": "diverged"}, opt ? String(META.diverged[c]) : ""),
          el("td", {"class": "num", "data-field": "collapsed"}, opt ? String(META.collapsed[c]) : ""),
          el("td", {"class": "num"}, opt ? String(META.never_above_zero[c]) : ""));
      }), {id: "rows-table"});
    const t1rows = [["optimized activation", "activation"], ["most activating token's activation", "most_activating"],
                    ["cosine to the closest token", "closest_cosine"]].map(function (x) {
      return el("tr", {}, el("td", {}, x[0]), num(t1[x[1] + "_mean"], 4, x[1] + "_mean"), num(t1[x[1] + "_sd"], 4, x[1] + "_sd"),
        num(p1[x[1] + "_mean"], 3), num(p1[x[1] + "_sd"], 3));
    }).concat([["norm of optimized inputs", "norm_optimized_mean"], ["norm of vocabulary vectors", "norm_vocabulary_mean"],
               ["closest token is the most activating", "closest_is_most_activating_share"]].map(function (x) {
      return el("tr", {}, el("td", {}, x[0]), num(t1[x[1]], 4, x[1]), el("td"), num(p1[x[1]], 3), el("td"));
    }));
    const table1 = table(["", {label: "mean", num: true}, {label: "sd", num: true}, {label: "paper mean", num: true},
                          {label: "paper sd", num: true}], t1rows, {id: "table1"});
    const fits = table(["quantity", {label: "slope per layer", num: true}, {label: "t", num: true}, {label: "df", num: true},
                        {label: "p", num: true}, {label: "paper slope", num: true}],
      ["activation", "most_activating", "closest_cosine"].map(function (q) {
        const f = r.by_layer[q] || {}, pf = r.paper.by_layer[q] || {};
        return el("tr", {"data-quantity": q}, el("td", {}, q.replace("_", " ")), num(f.slope, 4, "slope"), num(f.t, 2, "t"),
          el("td", {"class": "num"}, f.df === undefined || f.df === null ? "—" : String(f.df)),
          el("td", {"class": "num"}, f.p === null || f.p === undefined ? "—" : f.p.toPrecision(3)),
          num(pf.slope, 3));
      }), {id: "by-layer"});
    const layerCharts = el("div", {"class": "cards"}, ["activation", "most_activating", "closest_cosine"].map(function (q) {
      const pts = ((r.by_layer[q] || {}).layers || []).filter(function (l) { return l.mean !== null; })
        .map(function (l) { return [l.layer, l.mean]; });
      return el("figure", {}, lineChart([{points: pts}], {width: 300, height: 170, dots: true, xlabel: "layer",
        xticks: pts.map(function (p) { return p[0]; })}), el("figcaption", {"class": "muted"}, q.replace("_", " ") + ", layer means"));
    }));
    const groupRows = r.groups.map(function (g) {
      return el("tr", {"data-config": g.selection + "/" + g.k}, el("td", {}, g.selection), el("td", {"class": "num"}, String(g.k)),
        el("td", {"class": "num"}, String(g.words)), el("td", {"class": "num"}, String(g.diverged)),
        num(g.cosine_target_mean, 4, "cosine_target_mean"), num(g.activation_mean, 4, "activation_mean"),
        el("td", {"class": "num", "data-field": "top1_share", "data-value": String(g.top1_share)}, pct(g.top1_share)),
        el("td", {"class": "num", "data-field": "top20_share", "data-value": String(g.top20_share)}, pct(g.top20_share)));
    });
    const groups = table(["selection", {label: "k", num: true}, {label: "words", num: true}, {label: "diverged", num: true},
                          {label: "cos(input, target)", num: true}, {label: "activation", num: true},
                          {label: "top-1", num: true}, {label: "top-20", num: true}], groupRows, {id: "groups-table"});
    const selections = Array.from(new Set(r.groups.map(function (g) { return g.selection; })));
    const ks = Array.from(new Set(r.groups.map(function (g) { return g.k; }))).sort(function (a, b) { return a - b; });
    const curves = [];
    selections.forEach(function (s) {
      const gs = r.groups.filter(function (g) { return g.selection === s; });
      curves.push({name: s + " top-1", points: gs.map(function (g) { return [g.k, g.top1_share]; })});
      curves.push({name: s + " top-20", points: gs.map(function (g) { return [g.k, g.top20_share]; })});
    });
    const layers = el("p", {}, Object.keys(META.layers).map(function (l) {
      return [el("a", {href: "#/layer/" + l, "class": "layer-link"}, "layer " + l), " (" + META.layers[l] + ") "];
    }));
    const words = el("p", {id: "group-words"}, Object.keys(META.words).sort().map(function (w) { return [wordLink(w), " "]; }));
    const links = Object.entries(META.space_links || {}).map(function (e) {
      return el("p", {}, e[0] + ": ", el("a", {href: /^https:\/\//.test(e[1]) ? e[1] : null}, e[1]));
    });
    const settings = table(["setting", "value"], flatten(META.settings, "").map(function (kv) {
      return el("tr", {}, el("td", {}, kv[0]), el("td", {}, kv[1]));
    }), {id: "settings"});
    show(model.id, [el("h1", {}, "Overview"), cards, links, el("h2", {}, "Rows"), counts,
      el("h2", {}, "Layers"), layers, el("h2", {}, "Table 1: single neurons"), table1,
      el("h2", {}, "By layer (OLS over neurons)"), fits, layerCharts,
      el("h2", {}, "Tables 3 and 4: word groups"), groups,
      el("figure", {}, lineChart(curves, {width: 560, height: 220, dots: true, logx: true, ymin: 0, ymax: 1, xticks: ks,
        xlabel: "k (group size)", cls: "group-curves"}), el("figcaption", {"class": "muted"}, "share of words at top-1 and in the top-20, against k")),
      el("h2", {}, "Group words"), words, el("h2", {}, "Settings"), settings]);
  }
  function overviewWithoutReport() {  // the report refused this artifact (e.g. every row diverged)
    const rows = table(["config", {label: "rows", num: true}, {label: "diverged", num: true}], Object.keys(META.rows).map(function (c) {
      return el("tr", {"data-config": c}, el("td", {}, c), el("td", {"class": "num", "data-field": "rows"}, String(META.rows[c])),
        el("td", {"class": "num", "data-field": "diverged"}, c in META.diverged ? String(META.diverged[c]) : ""));
    }), {id: "rows-table"});
    const layers = el("p", {}, Object.keys(META.layers).map(function (l) {
      return [el("a", {href: "#/layer/" + l, "class": "layer-link"}, "layer " + l), " (" + META.layers[l] + ") "];
    }));
    show(META.model.id, [el("h1", {}, "Overview"), el("p", {"class": "big", id: "ov-model"}, META.model.id),
      el("p", {"class": "error", id: "report-error"}, "No report: " + META.report_error), el("h2", {}, "Rows"), rows,
      el("h2", {}, "Layers"), layers]);
  }
  function flatten(obj, prefix) {
    return Object.entries(obj || {}).flatMap(function (e) {
      const key = prefix ? prefix + "." + e[0] : e[0];
      return e[1] && typeof e[1] === "object" && !Array.isArray(e[1]) ? flatten(e[1], key) : [[key, JSON.stringify(e[1])]];
    });
  }

  function layerView(layer) {
    if (!(layer in META.layers)) return notFound("layer " + layer + " has no textualized neurons in this artifact");
    return load("layer/" + layer).then(function (data) {
      const cols = [["neuron", "neuron", false], ["activation", "activation", true],
                    ["most activating token", "most_activating_token", false],
                    ["its activation", "most_activating_activation", true],
                    ["closest token", "closest_token", false], ["closest cosine", "closest_cosine", true]];
      const at = {}; data.columns.forEach(function (c, i) { at[c] = i; });
      let sortBy = "activation", desc = true;
      const tbody = el("tbody");
      const head = el("tr", {}, cols.map(function (c) {
        return el("th", {"class": (c[2] ? "num " : "") + (c[2] ? "sortable" : ""), "data-sort": c[2] ? c[1] : null,
          on: c[2] ? {click: function () { desc = sortBy === c[1] ? !desc : true; sortBy = c[1]; fill(); }} : {}}, c[0]);
      }), el("th", {}, "flags"));
      function fill() {
        const rows = data.rows.slice().sort(function (a, b) {
          const x = a[at[sortBy]], y = b[at[sortBy]];
          if (x === y) return a[at.index] - b[at.index];
          if (x === null) return 1; if (y === null) return -1;
          return desc ? y - x : x - y;
        });
        head.querySelectorAll("th").forEach(function (th) {
          th.classList.remove("sorted-desc", "sorted-asc");
          if (th.getAttribute("data-sort") === sortBy) th.classList.add(desc ? "sorted-desc" : "sorted-asc");
        });
        tbody.replaceChildren();
        rows.forEach(function (r) {
          tbody.appendChild(el("tr", {"data-neuron": r[at.neuron]}, el("td", {}, neuronLink(r[at.neuron])),
            num(r[at.activation], 4, "activation"), el("td", {}, r[at.most_activating_token] === null ? "—" : wordLink(r[at.most_activating_token])),
            num(r[at.most_activating_activation], 4, "most_activating_activation"),
            el("td", {}, r[at.closest_token] === null ? "—" : wordLink(r[at.closest_token])),
            num(r[at.closest_cosine], 4, "closest_cosine"), el("td", {}, flags(r[at.diverged], r[at.collapsed]))));
        });
      }
      fill();
      show("layer " + layer, [el("h1", {}, "Layer " + layer), el("p", {"class": "muted"}, data.rows.length +
        " textualized neurons; click a numeric column to sort."), el("table", {id: "layer-table"}, el("thead", {}, head), tbody)]);
    });
  }

  function nearestTable(nearest, id) {
    if (!nearest) return el("p", {"class": "muted"}, "none (the optimization diverged)");
    return table(["#", "token", {label: "cosine", num: true}], nearest.map(function (n, i) {
      return el("tr", {}, el("td", {}, String(i + 1)), el("td", {"data-token": ""}, wordLink(n[0])), num(n[1], 4, "cosine"));
    }), {id: id, "class": "nearest"});
  }

  function neuronView(name) {
    const m = /^L([0-9]+)\.N([0-9]+)$/.exec(name);
    if (!m || +m[1] < 1 || +m[1] > META.model.num_layers || +m[2] >= META.model.hidden_size || String(+m[1]) !== m[1] || String(+m[2]) !== m[2])
      return notFound(name + " is not a neuron of this model (L1..L" + META.model.num_layers + ", N0..N" + (META.model.hidden_size - 1) + ")");
    const layer = +m[1], index = +m[2];
    return load("neuron/L" + layer + "-" + Math.floor(index / META.neuron_chunk)).then(function (chunk) {
      const n = chunk[name];
      if (!n) return notFound(name + " is not in this artifact");
      const o = n.opt;
      const parts = [el("h1", {id: "neuron-name"}, name), el("p", {}, el("a", {href: "#/layer/" + layer}, "layer " + layer),
        ", neuron " + index, " ", o ? flags(o.diverged, o.collapsed) : el("span", {"class": "flag"}, "not textualized"))];
      if (o) {
        parts.push(el("div", {"class": "cards"},
          el("div", {}, el("div", {"class": "muted"}, "optimized activation"), el("div", {"class": "big", id: "activation", "data-value": String(o.activation)}, fmt(o.activation))),
          el("div", {}, el("div", {"class": "muted"}, "most activating token"), el("div", {"class": "big", id: "most-activating"}, wordLink(o.most_activating_token)),
             el("div", {}, "activation ", el("span", {id: "most-activating-activation", "data-value": String(o.most_activating_activation)}, fmt(o.most_activating_activation)),
                ", a_max ", el("span", {id: "a-max", "data-value": String(n.a_max)}, fmt(n.a_max)))),
          el("div", {}, el("div", {"class": "muted"}, "norm"), el("div", {"class": "big"}, fmt(o.norm, 2)))));
        parts.push(el("h2", {}, "Activation trace"), traceChart(o.trace, o.activation));
        parts.push(el("h2", {}, "What the optimized input is close to: the 10 nearest tokens"), nearestTable(o.nearest, "nearest"));
      } else {
        parts.push(el("p", {}, "This neuron was not textualized in this artifact. From the vocabulary scan: a_max ",
          el("span", {id: "a-max", "data-value": String(n.a_max)}, fmt(n.a_max)), ", most activating token ", wordLink(n.most_activating_token), "."));
      }
      parts.push(el("h2", {}, "Which words really activate it: the vocabulary scan's top tokens"));
      if (n.top) {
        parts.push(table(["#", "token", {label: "activation", num: true}], n.top.map(function (t, i) {
          return el("tr", {}, el("td", {}, String(i + 1)), el("td", {"data-token": ""}, wordLink(t[0])), num(t[1], 4, "activation"));
        }), {id: "top-tokens"}));
      } else {
        parts.push(el("p", {"class": "muted", id: "top-tokens-missing"}, "This artifact keeps only the most activating token (",
          token(n.most_activating_token), "); artifacts built with a newer ft-artifacts keep the scan's top 10."));
      }
      show(name, parts);
    });
  }

  function groupView(word, selection, k) {
    if (!(word in META.words)) return notFound(word + " is not a group word of this artifact");
    return load("group/" + META.words[word]).then(function (file) {
      const key = word + "/" + selection + "/" + k, g = file[key];
      if (!g) return notFound(key + " is not a group of this artifact");
      const members = el("ul", {"class": "members", id: "members"}, g.neurons.map(function (n, i) {
        return el("li", {}, g.textualized[i] ? neuronLink(n) : el("span", {"class": "muted"}, n));
      }));
      const others = Object.keys(file).sort().map(function (other) {
        const x = file[other];
        return [other === key ? el("strong", {}, other) : el("a", {href: groupHref(x.word, x.selection, x.k)}, x.selection + "/" + x.k), " "];
      });
      show(key, [el("h1", {id: "group-name"}, "Group ", token(word), " " + selection + ", k = " + k),
        el("p", {}, "word ", wordLink(word), ", selection " + selection + ", k = " + k + " ", flags(g.diverged, g.collapsed)),
        el("p", {"class": "muted"}, "this word's groups: ", others),
        el("div", {"class": "cards"},
          el("div", {}, el("div", {"class": "muted"}, "target rank"), el("div", {"class": "big", id: "target-rank", "data-value": g.target_rank === null ? "" : String(g.target_rank)}, g.target_rank === null ? "—" : String(g.target_rank))),
          el("div", {}, el("div", {"class": "muted"}, "target cosine"), el("div", {"class": "big", id: "target-cosine", "data-value": String(g.target_cosine)}, fmt(g.target_cosine))),
          el("div", {}, el("div", {"class": "muted"}, "group activation"), el("div", {"class": "big", id: "activation", "data-value": String(g.activation)}, fmt(g.activation)),
             el("div", {}, "the target word's own: ", el("span", {id: "target-activation", "data-value": String(g.target_activation)}, fmt(g.target_activation))))),
        el("h2", {}, "The 10 nearest tokens"), nearestTable(g.nearest, "nearest"),
        el("h2", {}, "Activation trace"), traceChart(g.trace, g.activation),
        el("h2", {}, g.neurons.length + " member neurons, best first"), members]);
    });
  }

  function wordView(word) {
    return vocab().then(function () {
      if (!vocabIndex.has(word)) return notFound("this is not a single token of the model's vocabulary", word);
      const id = vocabIndex.get(word);
      const wants = [load("word/" + Math.floor(id / META.word_bucket))];
      if (word in META.words) wants.push(load("group/" + META.words[word]));
      return Promise.all(wants).then(function (got) {
        const w = got[0][String(id)], groups = got[1];
        const parts = [el("h1", {id: "word-name"}, "Word ", token(word)), el("p", {"class": "muted"}, "token id " + id)];
        parts.push(el("h2", {}, "Its groups"));
        if (groups) {
          parts.push(table(["group", {label: "target rank", num: true}, {label: "target cosine", num: true}, "flags"],
            Object.keys(groups).sort(function (a, b) {
              const x = groups[a], y = groups[b];
              return x.selection === y.selection ? x.k - y.k : (x.selection < y.selection ? -1 : 1);
            }).map(function (key) {
              const g = groups[key];
              return el("tr", {"data-group": key}, el("td", {}, el("a", {href: groupHref(g.word, g.selection, g.k)}, g.selection + ", k = " + g.k)),
                el("td", {"class": "num", "data-field": "target_rank", "data-value": g.target_rank === null ? "" : String(g.target_rank)}, g.target_rank === null ? "—" : String(g.target_rank)),
                num(g.target_cosine, 4, "target_cosine"), el("td", {}, flags(g.diverged, g.collapsed)));
            }), {id: "word-groups"}));
        } else {
          parts.push(el("p", {"class": "muted"}, "none: this word is not one of the artifact's group words"));
        }
        parts.push(el("h2", {}, "Optimized inputs nearest to it"), table(["#", "neuron or group", "config", {label: "cosine", num: true}],
          w.near.map(function (h, i) {
            let link = h[0];
            if (h[1] === "neurons") link = neuronLink(h[0]);
            else { const p = h[0].split("/"); link = el("a", {href: groupHref(p.slice(0, -2).join("/"), p[p.length - 2], p[p.length - 1])}, h[0]); }
            return el("tr", {"data-name": h[0]}, el("td", {}, String(i + 1)), el("td", {}, link), el("td", {}, h[1]), num(h[2], 4, "cosine"));
          }), {id: "neurons-near"}));
        parts.push(el("h2", {}, "Neurons whose most activating token it is"), w.top_of.length ?
          el("ul", {"class": "members", id: "top-of"}, w.top_of.map(function (n) { return el("li", {}, neuronLink(n)); })) :
          el("p", {"class": "muted", id: "top-of"}, "none"));
        show("word", parts);
      });
    });
  }

  function notFound(message, what) {
    show("not found", [el("h1", {}, "Not found"), el("p", {"class": "error", id: "not-found"}, what === undefined ? "" : token(what), what === undefined ? "" : ": ", message)]);
  }

  // --- routes -----------------------------------------------------------------------------------------
  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const parts = hash.split("/");
    let done;
    try {
      if (!hash) done = overview();
      else if (parts[0] === "layer" && parts.length === 2) done = layerView(parts[1]);
      else if (parts[0] === "neuron" && parts.length === 2) done = neuronView(decodeURIComponent(parts[1]));
      else if (parts[0] === "group" && parts.length >= 4)
        done = groupView(decodeURIComponent(parts.slice(1, -2).join("/")), parts[parts.length - 2], parts[parts.length - 1]);
      else if (parts[0] === "word" && parts.length >= 2) done = wordView(decodeURIComponent(hash.slice(5)));
      else done = notFound("no such page: " + hash);
    } catch (err) {
      done = Promise.reject(err);
    }
    Promise.resolve(done).then(function () { view.setAttribute("data-ready", location.hash || "#/"); }, function (err) {
      show("error", [el("h1", {}, "Error"), el("p", {"class": "error"}, String(err && err.message || err))]);
      view.setAttribute("data-ready", location.hash || "#/");
    });
  }

  // --- search with completion over the vocabulary ------------------------------------------------------
  const input = document.getElementById("search"), list = document.getElementById("completions");
  function suggestions(text) {
    const out = [], q = text.trim();
    if (!q) return Promise.resolve(out);
    const neuron = /^l?([0-9]+)\.n?([0-9]+)$/i.exec(q);
    if (neuron) out.push(["#/neuron/L" + (+neuron[1]) + ".N" + (+neuron[2]), "neuron L" + (+neuron[1]) + ".N" + (+neuron[2])]);
    if (/^[0-9]+$/.test(q) && q in META.layers) out.push(["#/layer/" + q, "layer " + q]);
    return vocab().then(function (tokens) {
      const lower = q.toLowerCase(), words = [], seen = new Set();
      if (vocabIndex.has(q)) { words.push(q); seen.add(q); }
      Object.keys(META.words).sort().forEach(function (w) { if (w.startsWith(lower) && !seen.has(w)) { words.push(w); seen.add(w); } });
      for (let i = 0; i < tokens.length && words.length < 12; i++) {
        const t = tokens[i];
        if (!seen.has(t) && (t.startsWith(q) || t.startsWith(lower))) { words.push(t); seen.add(t); }
      }
      return out.concat(words.slice(0, 12).map(function (w) { return ["#/word/" + encodeURIComponent(w), w]; }));
    });
  }
  let latest = 0;
  input.addEventListener("input", function () {
    const ticket = ++latest;
    suggestions(input.value).then(function (items) {
      if (ticket !== latest) return;
      list.replaceChildren();
      items.forEach(function (item) {
        list.appendChild(el("li", {}, el("a", {href: item[0], "class": "completion",
          on: {click: function () { list.hidden = true; }}}, item[1])));
      });
      list.hidden = !items.length;
    });
  });
  document.getElementById("search-form").addEventListener("submit", function (event) {
    event.preventDefault();
    suggestions(input.value).then(function (items) {
      list.hidden = true;
      if (items.length) location.hash = items[0][0];
    });
  });
  document.addEventListener("click", function (event) { if (!list.contains(event.target) && event.target !== input) list.hidden = true; });

  document.getElementById("model-name").textContent = META.model.id;
  window.addEventListener("hashchange", route);
  route();
})();
