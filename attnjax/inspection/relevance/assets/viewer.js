// attnjax relevance-tree viewer. Hand-written, no libraries, no network: the data is the JSON in
// <script id="tree-data">, the frames are PNG data URIs inside it. Only the current frame's tree
// is drawn, so a file with hundreds of frames stays responsive.
(function () {
  "use strict";

  var SVG_NS = "http" + "://www.w3.org/2000/svg"; // XML namespace name, never fetched
  var DATA = JSON.parse(document.getElementById("tree-data").textContent);
  var FRAMES = DATA.frames;
  var LAYERS = {};
  DATA.layers.forEach(function (layer, depth) {
    layer.depth = depth;
    LAYERS[layer.name] = layer;
  });
  var STYLE = {
    attention: { color: "#ff4fd8", label: "attention peak", short: "attention peak" },
    a1: { color: "#ffd166", label: "attention hidden unit (a1: 1x1 conv + ELU)",
      short: "attention hidden unit" },
    conv3: { color: "#ef476f", label: "conv3 channel (L2-normalised per cell)",
      short: "conv3 channel" },
    conv2: { color: "#06d6a0", label: "conv2 channel", short: "conv2 channel" },
    conv1: { color: "#4cc9f0", label: "conv1 channel", short: "conv1 channel" },
    input: { color: "#f1f1f1", label: "input pixel (of one of the 4 stacked frames)",
      short: "pixel" }
  };
  var CELLS = 49; // 7x7 attention cells: uniform attention is 1/49 per cell
  var NEAR_UNIFORM = 2; // a peak under twice uniform shows no focus (attnjax.baseline)
  var OPEN_LEVELS = 3; // levels unfolded when a frame opens
  var MIN_SCALE = 0.75; // the tree shrinks to fit the panel's width, down to this
  var MIN_FRAME_HEIGHT = 160; // the frame shrinks to leave its cards in view, down to this
  var HEAT_OPACITY = 0.35; // the heatmap's strongest cell
  var HEAD_COLORS = ["#ffb703", "#8ecae6", "#c77dff", "#90be6d", "#f94144", "#f8961e"];
  var ROW = 18; // one row per shown leaf: taller than a label, so labels never meet vertically
  var MARGIN_X = 30;
  var MARGIN_Y = 16;
  var LABEL_X = 11; // every label starts this far right of its dot
  var TOGGLE_X = -17; // the fold button sits left of its dot...
  var TOGGLE_HALF = 5.5; // ...and reaches this far to each side
  var BRANCH_ROOM = 24; // between a column's longest label and the next column's fold buttons

  var numHeads = DATA.meta.heads;
  var maxLevels = DATA.meta.tree_config ? levelsOf(DATA.meta.tree_config.leaf_layer) : 5;
  var state = {
    frame: 0,
    image: "screen",
    heatmap: true,
    head: "sum",
    overlay: true,
    levels: Math.min(OPEN_LEVELS, maxLevels),
    collapsed: new Set(),
    expanded: new Set(),
    selected: null,
    hovered: null
  };
  var index = new Map(); // node id -> {node, parent, depth, head}

  function $(id) { return document.getElementById(id); }

  function levelsOf(leafLayer) { return LAYERS[leafLayer] ? LAYERS[leafLayer].depth + 1 : 5; }

  function svg(tag, attrs, parent) {
    var el = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    }
    if (parent) parent.appendChild(el);
    return el;
  }

  function html(tag, text, parent, cls) {
    var el = document.createElement(tag);
    if (text !== undefined && text !== null) el.textContent = text;
    if (cls) el.className = cls;
    if (parent) parent.appendChild(el);
    return el;
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function fmt(v, digits) {
    if (v === null || v === undefined) return "\u2013";
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
    return v.toFixed(digits === undefined ? 3 : digits);
  }

  function signed(v) { return (v >= 0 ? "+" : "") + fmt(v); }

  // "15x" for 0.31, "1.0x" for 0.02: an attention weight against uniform (1/49)
  function timesUniform(v) {
    var r = v * CELLS;
    return (r >= 9.95 ? r.toFixed(0) : r.toFixed(1)) + "\u00d7 uniform";
  }

  function vsUniform(v) { return fmt(v, 2) + " = " + timesUniform(v); }

  function nearUniform(frame) {
    return frame.tree.roots.every(function (r) { return r.activation * CELLS < NEAR_UNIFORM; });
  }

  // ---------------------------------------------------------------------------------- indexing

  function buildIndex(frame) {
    index.clear();
    function visit(node, parent, depth, head) {
      index.set(node.id, { node: node, parent: parent, depth: depth, head: head });
      node.children.forEach(function (c) { visit(c, node, depth + 1, head); });
    }
    frame.tree.roots.forEach(function (r) { visit(r, null, 0, r.channel); });
  }

  function isOpen(node, depth) {
    if (!node.children.length) return false;
    if (state.collapsed.has(node.id)) return false;
    if (state.expanded.has(node.id)) return true;
    return depth < state.levels - 1;
  }

  function countBelow(node) {
    var n = 0;
    node.children.forEach(function (c) { n += 1 + countBelow(c); });
    return n;
  }

  function label(node) {
    var at = " (" + node.y + "," + node.x + ")";
    if (node.layer === "attention") {
      var rank = Number(node.id.split("p")[1]) + 1;
      return "head " + node.channel + " peak " + rank + at + ": " + vsUniform(node.activation);
    }
    if (node.layer === "input") return "pixel" + at + " of stacked frame " + node.channel;
    return STYLE[node.layer].short + " " + node.channel + at;
  }

  // ------------------------------------------------------------------------------------ tree

  function layout(roots) {
    var items = [];
    var edges = [];
    var row = 0;
    var headRows = [];
    function visit(node, depth, parent) {
      var item = { node: node, depth: depth, parent: parent, y: 0, open: isOpen(node, depth) };
      items.push(item);
      if (item.open) {
        var kids = node.children.map(function (c) { return visit(c, depth + 1, item); });
        item.y = (kids[0].y + kids[kids.length - 1].y) / 2;
        kids.forEach(function (k) { edges.push({ from: item, to: k }); });
      } else {
        item.y = row;
        row += 1;
      }
      return item;
    }
    var lastHead = null;
    roots.forEach(function (root, i) {
      if (root.channel !== lastHead) {
        if (i) row += 0.5;
        headRows.push({ head: root.channel, row: row });
        row += 1;
        lastHead = root.channel;
      } else {
        row += 0.35;
      }
      visit(root, 0, null);
    });
    return { items: items, edges: edges, rows: row, headRows: headRows };
  }

  function py(item) { return MARGIN_Y + item.y * ROW; }

  function drawTree() {
    var frame = FRAMES[state.frame];
    var tree = $("tree-svg");
    clear(tree);
    var lay = layout(frame.tree.roots);
    var height = MARGIN_Y * 2 + lay.rows * ROW;
    tree.setAttribute("height", height);
    tree.setAttribute("data-frame", state.frame);

    var edgeLayer = svg("g", { id: "tree-edges" }, tree);
    var nodeLayer = svg("g", { id: "tree-nodes" }, tree);
    lay.headRows.forEach(function (h) {
      var t = svg("text", { class: "head-label", x: 8, y: MARGIN_Y + h.row * ROW }, nodeLayer);
      t.textContent = "head " + h.head;
    });

    // nodes first: every label sits beside its dot, so a column is as wide as its longest label
    // (measured as drawn) and the branches to the next column start where a label ends
    var labelEnd = [];
    lay.items.forEach(function (item) {
      var node = item.node;
      var cls = "node";
      if (node.children.length && !item.open) cls += " collapsed";
      if (node.id === state.selected) cls += " selected";
      var g = svg("g", {
        class: cls,
        "data-node-id": node.id,
        "data-layer": node.layer,
        role: "treeitem",
        "aria-label": label(node)
      }, nodeLayer);
      item.g = g;
      svg("circle", { r: node.layer === "attention" ? 7 : 5.5, fill: STYLE[node.layer].color }, g);
      var text = svg("text", { x: LABEL_X, y: 0.5 }, g);
      text.textContent = label(node);
      if (node.relevance !== null) {
        var rel = svg("tspan", { class: "rel", dx: 6 }, text);
        rel.textContent = signed(node.relevance);
      }
      if (node.children.length) {
        var t = svg("g", { class: "toggle", "data-toggle-for": node.id,
          transform: "translate(" + TOGGLE_X + ",0)" }, g);
        svg("rect", { x: -TOGGLE_HALF, y: -TOGGLE_HALF, width: 2 * TOGGLE_HALF,
          height: 2 * TOGGLE_HALF, rx: 2 }, t);
        var glyph = svg("text", { x: 0, y: 0.5 }, t);
        glyph.textContent = item.open ? "\u2212" : "+";
        if (!item.open) {
          var more = svg("tspan", { class: "rel", dx: 4 }, text);
          more.textContent = "[+" + countBelow(node) + "]";
        }
      }
      var box = text.getBBox(); // its tspans' offsets included
      item.labelEnd = box.x + box.width;
      labelEnd[item.depth] = Math.max(labelEnd[item.depth] || 0, item.labelEnd);
    });
    var columns = [MARGIN_X];
    for (var d = 1; d < maxLevels; d++) {
      columns[d] = columns[d - 1] + (labelEnd[d - 1] || 0) + BRANCH_ROOM - TOGGLE_X + TOGGLE_HALF;
    }
    function px(item) { return columns[item.depth]; }
    lay.items.forEach(function (item) {
      item.g.setAttribute("transform", "translate(" + px(item) + "," + py(item) + ")");
    });

    // edge width: |relevance| relative to the strongest sibling
    var siblingMax = new Map();
    lay.edges.forEach(function (e) {
      var m = siblingMax.get(e.from) || 0;
      siblingMax.set(e.from, Math.max(m, Math.abs(e.to.node.relevance)));
    });
    lay.edges.forEach(function (e) {
      var x1 = px(e.from) + e.from.labelEnd + 4;
      var y1 = py(e.from);
      var x2 = px(e.to) + (e.to.node.children.length ? TOGGLE_X - TOGGLE_HALF : -8);
      var y2 = py(e.to);
      var mid = (x1 + x2) / 2;
      var rel = e.to.node.relevance;
      var m = siblingMax.get(e.from) || 1;
      svg("path", {
        class: "edge",
        d: "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2,
        stroke: rel >= 0 ? "var(--pos)" : "var(--neg)",
        "stroke-width": (0.8 + 3.2 * Math.abs(rel) / m).toFixed(2),
        "stroke-opacity": 0.8,
        "data-from": e.from.node.id,
        "data-to": e.to.node.id
      }, edgeLayer);
    });
    fitTree(tree, nodeLayer, height);
    var shown = lay.items.length;
    var total = index.size;
    $("tree-header").textContent = frame.tree.roots.length + " peaks \u00b7 " + shown + " of " +
      total + " nodes shown \u00b7 click a node to pin it, hover to inspect, \u00b1 to fold";
    var note = $("uniform-note");
    note.hidden = !nearUniform(frame);
    note.textContent = "Attention is near uniform in this frame (every peak under " +
      NEAR_UNIFORM + "\u00d7 uniform = " + fmt(NEAR_UNIFORM / CELLS, 3) + "): no cell stands " +
      "out, so these trees start from cells barely above the rest.";
  }

  // the tree's own width (its widest label included), shrunk to the panel's width if wider,
  // down to MIN_SCALE (then the panel scrolls sideways); nothing is clipped
  function fitTree(tree, content, height) {
    var box = content.getBBox();
    var width = Math.ceil(Math.max(box.x + box.width, 0) + 12);
    var room = $("tree-scroll").clientWidth - 2;
    var scale = room > 0 && width > room ? Math.max(MIN_SCALE, room / width) : 1;
    tree.setAttribute("viewBox", "0 0 " + width + " " + height);
    tree.setAttribute("width", Math.floor(width * scale));
    tree.setAttribute("height", Math.floor(height * scale));
    tree.setAttribute("data-scale", scale.toFixed(3));
  }

  // --------------------------------------------------------------------------------- frame view

  function centre(rf) { return [rf[1] + rf[2] / 2, rf[0] + rf[2] / 2]; }

  function rect(rf, attrs, parent) {
    var a = { x: rf[1], y: rf[0], width: rf[2], height: rf[2], "vector-effect": "non-scaling-stroke" };
    Object.keys(attrs).forEach(function (k) { a[k] = attrs[k]; });
    return svg("rect", a, parent);
  }

  function drawImage() {
    var frame = FRAMES[state.frame];
    var img = $("frame-img");
    var size = frame.image_sizes[state.image];
    img.src = frame.images[state.image];
    img.setAttribute("data-mode", state.image);
    $("frame-box").style.setProperty("--aspect", (size[1] / size[0]).toFixed(5));
    fitFrame();
  }

  // the frame as large as the panel allows with the node card (at its fixed minimum height,
  // so hovering never resizes the frame) and the frame card below it in view; the legend card
  // may lie below the fold. The one-column layout of narrow windows scrolls the page instead.
  function fitFrame() {
    var box = $("frame-box");
    if (window.matchMedia("(max-width: 900px)").matches) {
      box.style.width = "";
      return;
    }
    var panel = $("frame-panel");
    var size = FRAMES[state.frame].image_sizes[state.image];
    var gap = parseFloat(getComputedStyle(panel).rowGap) || 0;
    var room = panel.clientHeight - parseFloat(getComputedStyle($("node-info")).minHeight) -
      $("frame-info").offsetHeight - 2 * gap - 2; // 2: the frame's border
    var height = Math.max(MIN_FRAME_HEIGHT, room);
    box.style.width = Math.floor(Math.min(panel.clientWidth, height * size[1] / size[0])) + "px";
  }

  function drawHeatmap() {
    var g = $("heatmap");
    clear(g);
    g.setAttribute("display", state.heatmap ? "inline" : "none");
    if (!state.heatmap) return;
    var att = FRAMES[state.frame].tree.attention; // [7][7][K]
    var grid = att.length;
    var cell = 84 / grid;
    var values = [];
    var max = 0;
    for (var y = 0; y < grid; y++) {
      for (var x = 0; x < grid; x++) {
        var v = 0;
        if (state.head === "sum") {
          for (var k = 0; k < att[y][x].length; k++) v += att[y][x][k];
        } else {
          v = att[y][x][Number(state.head)];
        }
        values.push([y, x, v]);
        max = Math.max(max, v);
      }
    }
    var color = state.head === "sum" ? "#ffb703" : HEAD_COLORS[Number(state.head) % HEAD_COLORS.length];
    // light, and only what lies above uniform (1/49 a head; K/49 for the sum of K heads): a
    // near-uniform map leaves the frame clear, a focused one never hides it
    var uniform = (state.head === "sum" ? att[0][0].length : 1) / CELLS;
    var top = Math.max(max, 5 * uniform);
    values.forEach(function (c) {
      var a = HEAT_OPACITY * Math.min(1, Math.max(0, (c[2] - uniform) / (top - uniform)));
      svg("rect", {
        class: "heat",
        x: c[1] * cell, y: c[0] * cell, width: cell, height: cell,
        fill: color,
        "fill-opacity": a.toFixed(3),
        "data-value": c[2]
      }, g);
    });
  }

  function drawTreeOverlay() {
    var g = $("tree-overlay");
    clear(g);
    g.setAttribute("display", state.overlay ? "inline" : "none");
    if (!state.overlay) return;
    var branches = svg("g", {}, g);
    var squares = svg("g", {}, g);
    var dots = svg("g", {}, g);
    function visit(node, depth) {
      var c = centre(node.rf);
      var open = isOpen(node, depth);
      if (open) {
        node.children.forEach(function (child) {
          var cc = centre(child.rf);
          svg("line", {
            class: "branch", x1: c[0], y1: c[1], x2: cc[0], y2: cc[1],
            stroke: STYLE[child.layer].color, "stroke-width": 1,
            "vector-effect": "non-scaling-stroke"
          }, branches);
          visit(child, depth + 1);
        });
      } else {
        rect(node.rf, { class: "rf", stroke: STYLE[node.layer].color, "stroke-width": 1,
          "stroke-opacity": 0.9 }, squares);
      }
      // a zero-length stroke with round caps: a round dot of constant screen size on any
      // aspect ratio (shapes in the stretched 84x84 viewBox would turn into ellipses)
      svg("path", {
        class: "dot", d: "M" + c[0] + "," + c[1] + " h0", stroke: STYLE[node.layer].color,
        "stroke-width": node.layer === "attention" ? 11 : node.layer === "input" ? 3 : 6,
        "stroke-linecap": "round", "vector-effect": "non-scaling-stroke"
      }, dots);
    }
    var att = FRAMES[state.frame].tree.attention;
    var cell = 84 / att.length;
    FRAMES[state.frame].tree.roots.forEach(function (r) {
      svg("rect", {
        class: "peak-cell", x: r.x * cell, y: r.y * cell, width: cell, height: cell,
        fill: "none", stroke: STYLE.attention.color, "stroke-width": 1.5,
        "stroke-dasharray": "4 3", "vector-effect": "non-scaling-stroke", "data-node-id": r.id
      }, squares);
      visit(r, 0);
    });
  }

  function drawSelection() {
    var g = $("selection-overlay");
    clear(g);
    var id = state.hovered || state.selected;
    Array.prototype.forEach.call(document.querySelectorAll("#tree-svg .node.hovered"),
      function (el) { el.classList.remove("hovered"); });
    if (state.hovered) {
      var hov = document.querySelector('#tree-svg .node[data-node-id="' + state.hovered + '"]');
      if (hov) hov.classList.add("hovered");
    }
    var entry = id ? index.get(id) : null;
    showInfo(entry);
    if (!entry) return;
    var node = entry.node;
    // ancestors dashed, children thin, the node itself on top
    var up = entry.parent;
    while (up) {
      rect(up.rf, { class: "rf ancestor", stroke: STYLE[up.layer].color, "stroke-width": 1,
        "stroke-dasharray": "3 2" }, g);
      up = index.get(up.id).parent;
    }
    node.children.forEach(function (child) {
      rect(child.rf, { class: "rf child", stroke: STYLE[child.layer].color,
        "stroke-width": 1, "stroke-opacity": 0.9, "data-node-id": child.id }, g);
    });
    rect(node.rf, {
      id: "rf-highlight",
      "stroke-width": 2.5,
      "data-node-id": node.id,
      "data-layer": node.layer,
      "data-top": node.rf[0],
      "data-left": node.rf[1],
      "data-size": node.rf[2]
    }, g);
  }

  function showInfo(entry) {
    var box = $("node-info");
    clear(box);
    html("h2", entry ? (state.hovered ? "hovered node" : "selected node") : "node", box);
    if (!entry) {
      html("p", "Hover over or click a node of the tree to see its receptive field on the frame " +
        "and its values here.", box, "muted");
      return;
    }
    var node = entry.node;
    var layer = LAYERS[node.layer];
    var dl = html("dl", null, box);
    function row(key, value, id) {
      html("dt", key, dl);
      var dd = html("dd", value, dl);
      if (id) dd.id = id;
    }
    var channelName = node.layer === "attention" ? "head" : node.layer === "input" ? "stacked frame" :
      node.layer === "a1" ? "hidden unit" : "channel";
    row("layer", STYLE[node.layer].label, "info-layer");
    row("position (y, x)", "(" + node.y + ", " + node.x + ") of " + layer.grid + "\u00d7" + layer.grid,
      "info-position");
    row(channelName, String(node.channel), "info-channel");
    var actName = node.layer === "attention" ? "attention weight" :
      node.layer === "conv3" ? "activation (L2-normalised)" : "activation";
    row(actName, fmt(node.activation, 4), "info-activation");
    if (node.layer === "attention") row("against uniform", timesUniform(node.activation) +
      " (uniform: 1/" + CELLS + " = " + fmt(1 / CELLS, 3) + " per cell)", "info-uniform");
    if (node.pre_activation !== null) {
      row(node.layer === "attention" ? "logit" : "pre-activation", fmt(node.pre_activation, 4),
        "info-pre");
    }
    if (node.relevance !== null) {
      var parentTotal = entry.parent ? entry.parent.input_total : null;
      var share = parentTotal ? " (" + (100 * node.relevance / parentTotal).toFixed(1) +
        "% of parent's input)" : "";
      row("relevance", signed(node.relevance) + share, "info-relevance");
    }
    if (node.input_total !== null) {
      row("sum of inputs", fmt(node.input_total, 4) + " = pre-activation \u2212 bias", "info-input");
    }
    row("receptive field", "rows " + node.rf[0] + "\u2013" + (node.rf[0] + node.rf[2] - 1) +
      ", cols " + node.rf[1] + "\u2013" + (node.rf[1] + node.rf[2] - 1) + " (" + node.rf[2] +
      "\u00d7" + node.rf[2] + " of 84\u00d784)", "info-rf");
    row("node id", node.id, "info-id");
  }

  function showFrameInfo() {
    var frame = FRAMES[state.frame];
    var box = $("frame-info");
    clear(box);
    html("h2", "frame " + (state.frame + 1) + " of " + FRAMES.length, box);
    var dl = html("dl", null, box);
    function row(key, value) { html("dt", key, dl); html("dd", value, dl); }
    row("env step", String(frame.env_step));
    row("action", frame.action_name ? frame.action + " (" + frame.action_name + ")" : String(frame.action));
    row("reward", fmt(frame.reward, 2));
    row("value estimate", fmt(frame.value, 3));
    var peaks = frame.tree.roots.map(function (r) {
      return "head " + r.channel + " at (" + r.y + "," + r.x + "): " + vsUniform(r.activation);
    });
    row("peaks", peaks.join("; ") || "none");
  }

  function buildLegend() {
    var bar = $("legend-bar");
    DATA.layers.forEach(function (layer, depth) {
      if (depth >= maxLevels) return;
      var chip = html("span", null, bar, "chip");
      html("span", null, chip, "swatch").style.background = STYLE[layer.name].color;
      html("span", STYLE[layer.name].short, chip);
    });
    [["var(--pos)", "excites"], ["var(--neg)", "inhibits"]].forEach(function (item) {
      var chip = html("span", null, bar, "chip");
      html("span", null, chip, "swatch line").style.borderColor = item[0];
      html("span", item[1], chip);
    });
    var box = $("legend");
    html("h2", "legend", box);
    DATA.layers.forEach(function (layer, depth) {
      if (depth >= maxLevels) return;
      var r = html("div", null, box, "legend-row");
      var s = html("span", null, r, "swatch");
      s.style.background = STYLE[layer.name].color;
      html("span", STYLE[layer.name].label + " \u2014 " + layer.grid + "\u00d7" + layer.grid +
        " grid, field " + layer.rf_size + "\u00d7" + layer.rf_size + " px", r);
    });
    var rows = [
      ["line", "var(--pos)", "positive relevance (activation \u00d7 weight); width \u221d |relevance| among siblings"],
      ["line", "var(--neg)", "negative relevance (inhibition)"],
      ["square", "var(--accent)", "receptive field of the hovered / pinned node; dashed: its ancestors"],
      ["square", "#ffb703", "attention heatmap: 7\u00d77 cells stretched over the frame, " +
        "shaded by their weight above uniform (1/49)"],
      ["square", STYLE.attention.color, "dashed: a peak's heatmap cell (its receptive field, " +
        "36\u00d736, is centred on the big dot)"]
    ];
    rows.forEach(function (item) {
      var r = html("div", null, box, "legend-row");
      var s = html("span", null, r, "swatch " + item[0]);
      s.style.borderColor = item[1];
      html("span", item[2], r);
    });
    html("p", "Keys: \u2190/\u2192 frame, Home/End first/last, h attention, t tree on frame, " +
      "i image, Esc unpin.", box, "muted");
  }

  function buildControls() {
    var meta = DATA.meta;
    $("run-meta").textContent = [
      meta.env_id, meta.network + " network", "\u03bb = " + meta.attn_coef, "K = " + meta.heads,
      "step " + Number(meta.global_step).toLocaleString("en-US"), FRAMES.length + " frames",
      "peaks/head " + meta.tree_config.num_peaks, "branching " + meta.tree_config.branching.join(","),
      "rank " + meta.tree_config.rank
    ].join(" \u00b7 ");
    var slider = $("frame-slider");
    slider.max = String(Math.max(0, FRAMES.length - 1));
    var headSelect = $("heatmap-head");
    var opt = html("option", "sum of heads", headSelect);
    opt.value = "sum";
    for (var k = 0; k < numHeads; k++) {
      var o = html("option", "head " + k, headSelect);
      o.value = String(k);
    }
    var depthSelect = $("depth-select");
    for (var d = maxLevels; d >= 1; d--) {
      var name = DATA.layers[d - 1].name;
      var od = html("option", (d === maxLevels ? "all " : "") + d + " (to " + name + ")", depthSelect);
      od.value = String(d);
    }
    depthSelect.value = String(state.levels);
    var modes = FRAMES.length ? Object.keys(FRAMES[0].images) : [];
    Array.prototype.forEach.call($("image-mode").options, function (o) {
      if (modes.indexOf(o.value) < 0) o.disabled = true;
    });
    if (modes.indexOf(state.image) < 0 && modes.length) state.image = modes[0];
    $("image-mode").value = state.image;

    $("prev").addEventListener("click", function () { go(state.frame - 1); });
    $("next").addEventListener("click", function () { go(state.frame + 1); });
    slider.addEventListener("input", function () { go(Number(slider.value)); });
    $("image-mode").addEventListener("change", function (e) {
      state.image = e.target.value;
      drawImage();
    });
    $("heatmap-toggle").addEventListener("change", function (e) {
      state.heatmap = e.target.checked;
      drawHeatmap();
    });
    headSelect.addEventListener("change", function (e) {
      state.head = e.target.value;
      drawHeatmap();
    });
    $("overlay-toggle").addEventListener("change", function (e) {
      state.overlay = e.target.checked;
      drawTreeOverlay();
    });
    depthSelect.addEventListener("change", function (e) {
      state.levels = Number(e.target.value);
      state.collapsed.clear();
      state.expanded.clear();
      redrawTree();
    });
    $("expand-all").addEventListener("click", function () {
      state.levels = maxLevels;
      depthSelect.value = String(maxLevels);
      state.collapsed.clear();
      state.expanded.clear();
      redrawTree();
    });
    $("collapse-all").addEventListener("click", function () {
      state.levels = 1;
      depthSelect.value = "1";
      state.collapsed.clear();
      state.expanded.clear();
      redrawTree();
    });

    var tree = $("tree-svg");
    tree.addEventListener("click", function (e) {
      var toggle = e.target.closest(".toggle");
      var g = e.target.closest(".node");
      if (!g) return;
      var id = g.getAttribute("data-node-id");
      if (toggle) {
        var entry = index.get(id);
        if (isOpen(entry.node, entry.depth)) {
          state.expanded.delete(id);
          state.collapsed.add(id);
        } else {
          state.collapsed.delete(id);
          state.expanded.add(id);
        }
        redrawTree();
        return;
      }
      state.selected = state.selected === id ? null : id;
      state.hovered = null;
      Array.prototype.forEach.call(tree.querySelectorAll(".node.selected"),
        function (el) { el.classList.remove("selected"); });
      if (state.selected) g.classList.add("selected");
      drawSelection();
    });
    tree.addEventListener("mouseover", function (e) {
      var g = e.target.closest(".node");
      var id = g ? g.getAttribute("data-node-id") : null;
      if (id === state.hovered) return;
      state.hovered = id;
      drawSelection();
    });
    tree.addEventListener("mouseleave", function () {
      state.hovered = null;
      drawSelection();
    });
    document.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      var tag = e.target && e.target.tagName;
      if (tag === "SELECT" || (tag === "INPUT" && e.target.type !== "range" &&
          e.target.type !== "checkbox")) return;
      var handled = true;
      if (e.key === "ArrowRight") go(state.frame + 1);
      else if (e.key === "ArrowLeft") go(state.frame - 1);
      else if (e.key === "Home") go(0);
      else if (e.key === "End") go(FRAMES.length - 1);
      else if (e.key === "Escape") { state.selected = null; state.hovered = null; redrawTree(); }
      else if (e.key === "h") { $("heatmap-toggle").click(); }
      else if (e.key === "t") { $("overlay-toggle").click(); }
      else if (e.key === "i") { cycleImage(); }
      else handled = false;
      if (handled) e.preventDefault();
    });
  }

  function cycleImage() {
    var options = Array.prototype.filter.call($("image-mode").options, function (o) { return !o.disabled; });
    var values = options.map(function (o) { return o.value; });
    state.image = values[(values.indexOf(state.image) + 1) % values.length];
    $("image-mode").value = state.image;
    drawImage();
  }

  function redrawTree() {
    drawTree();
    // a pinned or hovered node that folded away is let go
    ["selected", "hovered"].forEach(function (key) {
      if (state[key] && !document.querySelector('#tree-svg .node[data-node-id="' + state[key] + '"]')) {
        state[key] = null;
      }
    });
    drawTreeOverlay();
    drawSelection();
  }

  function go(i) {
    if (!FRAMES.length) return;
    i = Math.max(0, Math.min(FRAMES.length - 1, i));
    if (i === state.frame && index.size) return;
    state.frame = i;
    state.selected = null;
    state.hovered = null;
    state.collapsed.clear();
    state.expanded.clear();
    render();
  }

  function render() {
    var started = performance.now();
    var frame = FRAMES[state.frame];
    buildIndex(frame);
    $("frame-slider").value = String(state.frame);
    $("frame-label").textContent = "frame " + (state.frame + 1) + " / " + FRAMES.length;
    $("prev").disabled = state.frame === 0;
    $("next").disabled = state.frame === FRAMES.length - 1;
    document.body.setAttribute("data-frame", String(state.frame));
    showFrameInfo();
    drawImage();
    drawHeatmap();
    redrawTree();
    $("tree-scroll").scrollTop = 0;
    document.body.setAttribute("data-render-ms", (performance.now() - started).toFixed(1));
  }

  buildControls();
  buildLegend();
  window.addEventListener("resize", function () {
    if (!FRAMES.length) return;
    fitFrame();
    redrawTree();
  });
  if (FRAMES.length) {
    render();
  } else {
    $("tree-header").textContent = "no frames in this file";
  }
  document.body.setAttribute("data-ready", "true");
})();
