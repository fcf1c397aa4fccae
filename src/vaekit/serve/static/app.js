/* vaekit latent explorer: plain JavaScript, no framework, nothing loaded from outside vaekit.
 *
 * It talks only to the JSON API of `vaekit serve` (same origin):
 *   GET /api/info, GET /api/map[?dims=a,b], POST /api/decode, GET /api/code?index=i,
 *   POST /api/interpolate, POST /api/encode, GET /api/samples?n=&seed=.
 * An image from the API is {width, height, channels, pixels}, pixels floats in 0..1, row-major C,H,W.
 * Every failure (an {"error": "..."} answer, a network failure, a bug here) goes to the status line,
 * never to the console.
 *
 * For tests and scripts, the page writes what it shows into data- attributes: data-points and
 * data-method on #map, data-draws (images drawn so far) and data-pending ("1" while a decode is on
 * its way or waiting) on the image canvases, data-images on the strip and the samples grid, and
 * data-ready="1" on <body> once the first map, code and samples are shown.
 */
(function () {
  "use strict";

  // Matplotlib's tab10, so the classes have the colours of the report's figures.
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var UNLABELLED = "#4a6fa5";
  var MAP_PAD = 14;
  var PAIR_DIMS = 6;      // the dims selector offers pairs among this many dims, by KL
  var SAMPLES = 16;

  var state = {
    info: null,
    map: null,          // the /api/map answer
    mapKey: "",         // the dims query of the map shown ("" for the default)
    view: null,         // {x0, x1, y0, y1} of the map canvas
    dots: null,         // offscreen canvas holding the dots
    hover: null,        // [x, y] under the pointer
    code: null,         // {index, z, label} of the chosen test image
    sliderZ: null,      // the code the sliders show
    sliderDims: [],     // dims that have a slider, in order
    drawn: null,        // {z, point, mapKey} of the last encoded drawing or upload
    seed: 0,
    drawing: false,
    last: null,
    drawDirty: false
  };

  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------- status line and errors

  function setStatus(message, kind) {
    var el = $("status");
    el.textContent = message;
    el.className = kind || "";
  }

  function fail(err) {
    var message = err && err.message ? String(err.message) : String(err);
    // the API's sentences start in lower case ("the field 'image' is ..."): a status line does not
    setStatus(message.charAt(0).toUpperCase() + message.slice(1), "error");
  }

  // Wrap an event handler so that nothing it throws reaches the console.
  function guard(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (err) {
        fail(err);
      }
    };
  }

  window.addEventListener("error", function (event) {
    fail(event.error || event.message);
    event.preventDefault();
  });
  window.addEventListener("unhandledrejection", function (event) {
    fail(event.reason);
    event.preventDefault();
  });

  // ---------------------------------------------------------------- the API

  // GET `path` (no body) or POST `body` as JSON; resolves to the parsed answer, rejects with an
  // Error whose message is the server's {"error"} sentence or says what went wrong.
  function api(path, body) {
    var options = {headers: {"Accept": "application/json"}};
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try {
          data = JSON.parse(text);
        } catch (ignored) {
          data = null;
        }
        if (!response.ok) {
          throw new Error(data && typeof data.error === "string" ? data.error
            : "The server answered " + response.status + " to " + path + ".");
        }
        if (data === null || typeof data !== "object") {
          throw new Error("The server's answer to " + path + " is not JSON.");
        }
        return data;
      });
    }, function () {
      throw new Error("The server cannot be reached (" + path + "); is vaekit serve still running?");
    });
  }

  // At most one request in flight per channel; while one is on its way, newer requests replace
  // each other, so only the latest pending one is sent and drawn (pointer moves come faster than
  // decodes). `send(arg)` returns a promise, `draw(result)` shows it.
  function Latest(canvas, send, draw) {
    this.canvas = canvas;
    this.send = send;
    this.draw = draw;
    this.inflight = false;
    this.pending = null;
    this.hasPending = false;
  }
  Latest.prototype.request = function (arg) {
    this.pending = arg;
    this.hasPending = true;
    this.pump();
  };
  Latest.prototype.mark = function () {
    this.canvas.dataset.pending = this.inflight || this.hasPending ? "1" : "0";
  };
  Latest.prototype.pump = function () {
    var self = this;
    if (self.inflight || !self.hasPending) {
      self.mark();
      return;
    }
    var arg = self.pending;
    self.pending = null;
    self.hasPending = false;
    self.inflight = true;
    self.mark();
    Promise.resolve()
      .then(function () { return self.send(arg); })
      .then(function (result) { self.draw(result, arg); })
      .catch(fail)
      .then(function () {
        self.inflight = false;
        self.pump();
      });
  };

  function decode(z) {
    return api("/api/decode", {z: z});
  }

  // ---------------------------------------------------------------- images

  function checkImage(img) {
    if (!img || !img.pixels || img.pixels.length !== img.width * img.height * img.channels) {
      throw new Error("The server sent an image whose pixels do not match its size.");
    }
  }

  // Draw an API image on `canvas`, scaled to the canvas without smoothing (pixels stay pixels).
  function drawImage(canvas, img) {
    checkImage(img);
    var w = img.width, h = img.height, c = img.channels, p = img.pixels, hw = w * h;
    var off = document.createElement("canvas");
    off.width = w;
    off.height = h;
    var octx = off.getContext("2d");
    var data = octx.createImageData(w, h);
    var out = data.data;
    for (var i = 0; i < hw; i++) {
      var r = p[i], g = c >= 3 ? p[hw + i] : r, b = c >= 3 ? p[2 * hw + i] : r;
      out[4 * i] = Math.round(Math.min(1, Math.max(0, r)) * 255);
      out[4 * i + 1] = Math.round(Math.min(1, Math.max(0, g)) * 255);
      out[4 * i + 2] = Math.round(Math.min(1, Math.max(0, b)) * 255);
      out[4 * i + 3] = 255;
    }
    octx.putImageData(data, 0, 0);
    var ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    canvas.dataset.draws = String(Number(canvas.dataset.draws || 0) + 1);
  }

  // Replace the children of `holder` with one small canvas per image.
  function drawImages(holder, images, title) {
    if (!Array.isArray(images)) {
      throw new Error("The server sent no list of images.");
    }
    holder.textContent = "";
    images.forEach(function (img, i) {
      var canvas = document.createElement("canvas");
      canvas.width = 72;
      canvas.height = 72;
      canvas.dataset.draws = "0";
      canvas.title = title(i);
      holder.appendChild(canvas);
      drawImage(canvas, img);
    });
    holder.dataset.images = String(images.length);
  }

  // ---------------------------------------------------------------- classes

  function className(label) {
    var classes = state.info && state.info.classes;
    if (label === null || label === undefined) {
      return "";
    }
    if (Array.isArray(classes) && label >= 0 && label < classes.length) {
      return String(classes[label]);
    }
    return String(label);
  }

  function colour(label) {
    if (label === null || label === undefined) {
      return UNLABELLED;
    }
    return PALETTE[((label % PALETTE.length) + PALETTE.length) % PALETTE.length];
  }

  function drawLegend(labels) {
    var legend = $("legend");
    legend.textContent = "";
    if (!Array.isArray(labels)) {
      return;
    }
    var seen = {};
    labels.forEach(function (l) { seen[l] = true; });
    var classes = state.info.classes;
    var present = Object.keys(seen).map(Number).sort(function (a, b) { return a - b; });
    if (Array.isArray(classes)) {
      present = classes.map(function (_name, i) { return i; }).filter(function (i) { return seen[i]; });
    }
    present.forEach(function (label) {
      var li = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour(label);
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(className(label)));
      legend.appendChild(li);
    });
  }

  // ---------------------------------------------------------------- latent vectors

  // The server refuses a code with a coordinate beyond info.clamp: keep every code inside it.
  function clampZ(z) {
    var limit = Number(state.info && state.info.clamp);
    if (!(limit > 0)) { return z; }
    return z.map(function (v) { return Math.max(-limit, Math.min(limit, v)); });
  }

  function mapZ(x, y) {
    var m = state.map;
    return clampZ(m.mean.map(function (v, d) { return v + x * m.basis[0][d] + y * m.basis[1][d]; }));
  }

  function dot(a, b) {
    var s = 0;
    for (var i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }

  // The map point of code z: least squares in the map's plane (the exact inverse of mapZ).
  function projectZ(z) {
    var m = state.map;
    var r = z.map(function (v, d) { return v - m.mean[d]; });
    var b0 = m.basis[0], b1 = m.basis[1];
    var g00 = dot(b0, b0), g01 = dot(b0, b1), g11 = dot(b1, b1);
    var r0 = dot(r, b0), r1 = dot(r, b1);
    var det = g00 * g11 - g01 * g01;
    if (!(Math.abs(det) > 1e-12)) {
      return null;
    }
    return [(g11 * r0 - g01 * r1) / det, (g00 * r1 - g01 * r0) / det];
  }

  function fmt(v) {
    return (v >= 0 ? "\u2009" : "") + Number(v).toFixed(2);
  }

  // ---------------------------------------------------------------- the map

  function computeView(points) {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    points.forEach(function (p) {
      x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]);
      y0 = Math.min(y0, p[1]); y1 = Math.max(y1, p[1]);
    });
    if (!isFinite(x0)) { x0 = -3; x1 = 3; y0 = -3; y1 = 3; }
    if (x1 - x0 < 1e-6) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-6) { y0 -= 1; y1 += 1; }
    var px = 0.06 * (x1 - x0), py = 0.06 * (y1 - y0);
    return {x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py};
  }

  function toCanvas(x, y) {
    var c = $("map"), v = state.view;
    return [MAP_PAD + (x - v.x0) / (v.x1 - v.x0) * (c.width - 2 * MAP_PAD),
            c.height - MAP_PAD - (y - v.y0) / (v.y1 - v.y0) * (c.height - 2 * MAP_PAD)];
  }

  function fromCanvas(px, py) {
    var c = $("map"), v = state.view;
    return [v.x0 + (px - MAP_PAD) / (c.width - 2 * MAP_PAD) * (v.x1 - v.x0),
            v.y0 + (c.height - MAP_PAD - py) / (c.height - 2 * MAP_PAD) * (v.y1 - v.y0)];
  }

  function renderDots() {
    var c = $("map"), m = state.map;
    var off = document.createElement("canvas");
    off.width = c.width;
    off.height = c.height;
    var ctx = off.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, off.width, off.height);
    // the axes through 0 when they are in view
    ctx.strokeStyle = "#e3e6ea";
    ctx.lineWidth = 1;
    var o = toCanvas(0, 0);
    if (o[0] > 0 && o[0] < off.width) {
      ctx.beginPath(); ctx.moveTo(o[0], 0); ctx.lineTo(o[0], off.height); ctx.stroke();
    }
    if (o[1] > 0 && o[1] < off.height) {
      ctx.beginPath(); ctx.moveTo(0, o[1]); ctx.lineTo(off.width, o[1]); ctx.stroke();
    }
    ctx.globalAlpha = 0.75;
    m.points.forEach(function (p, i) {
      var q = toCanvas(p[0], p[1]);
      ctx.fillStyle = colour(m.labels ? m.labels[i] : null);
      ctx.beginPath();
      ctx.arc(q[0], q[1], 2.6, 0, 2 * Math.PI);
      ctx.fill();
    });
    ctx.globalAlpha = 1;
    state.dots = off;
  }

  function cross(ctx, p, size, colourName, width) {
    var q = toCanvas(p[0], p[1]);
    ctx.strokeStyle = colourName;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(q[0] - size, q[1] - size); ctx.lineTo(q[0] + size, q[1] + size);
    ctx.moveTo(q[0] - size, q[1] + size); ctx.lineTo(q[0] + size, q[1] - size);
    ctx.stroke();
  }

  function ring(ctx, p, radius, colourName) {
    var q = toCanvas(p[0], p[1]);
    ctx.strokeStyle = colourName;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(q[0], q[1], radius, 0, 2 * Math.PI);
    ctx.stroke();
  }

  function drawMap() {
    if (!state.map || !state.dots) {
      return;
    }
    var c = $("map"), ctx = c.getContext("2d");
    ctx.drawImage(state.dots, 0, 0);
    if (state.sliderZ) {
      var s = projectZ(state.sliderZ);
      if (s) { ring(ctx, s, 6, "#111"); }
    }
    if (state.drawn) {
      var d = state.drawn.mapKey === state.mapKey ? state.drawn.point : projectZ(state.drawn.z);
      if (d) {
        cross(ctx, d, 7, "#fff", 5);
        cross(ctx, d, 7, "#000", 2.5);
      }
    }
    if (state.hover) {
      var h = toCanvas(state.hover[0], state.hover[1]);
      ctx.strokeStyle = "rgba(0,0,0,0.35)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(h[0], 0); ctx.lineTo(h[0], c.height);
      ctx.moveTo(0, h[1]); ctx.lineTo(c.width, h[1]);
      ctx.stroke();
    }
  }

  function mapCaption(m) {
    if (m.method === "pca") {
      return "Axes: the first two principal components of the test codes.";
    }
    if (m.method === "dims") {
      var dims = state.mapKey.split(",");
      return "Axes: z[" + dims[0] + "] and z[" + dims[1] + "]; the other dims at the codes' mean.";
    }
    return "Axes: z[0] and z[1].";
  }

  function loadMap(key) {
    setStatus("Loading the map\u2026");
    return api("/api/map" + (key ? "?dims=" + encodeURIComponent(key) : "")).then(function (m) {
      if (!Array.isArray(m.points) || !Array.isArray(m.mean) || !Array.isArray(m.basis) || m.basis.length !== 2) {
        throw new Error("The server's map is missing its points, mean or basis.");
      }
      state.map = m;
      state.mapKey = key;
      state.view = computeView(m.points);
      renderDots();
      drawMap();
      var canvas = $("map");
      canvas.dataset.points = String(m.points.length);
      canvas.dataset.method = m.method;
      $("map-caption").textContent = mapCaption(m) + " " + m.points.length + " test images.";
      drawLegend(m.labels);
      setStatus("Map shown.", "ok");
    });
  }

  function pointerOnMap(event) {
    var c = $("map");
    var rect = c.getBoundingClientRect();
    var sx = c.width / rect.width, sy = c.height / rect.height;
    return fromCanvas((event.clientX - rect.left) * sx, (event.clientY - rect.top) * sy);
  }

  // ---------------------------------------------------------------- the dims selector

  function dimsByKl(info) {
    var order = (info.active || []).slice();
    var kl = info.kl_per_dim || [];
    var rest = [];
    for (var d = 0; d < info.latent_dim; d++) {
      if (order.indexOf(d) < 0) { rest.push(d); }
    }
    rest.sort(function (a, b) { return (kl[b] || 0) - (kl[a] || 0); });
    return order.concat(rest);
  }

  function setupDims(info) {
    var box = $("dims-controls"), select = $("dims");
    if (info.latent_dim <= 2) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    select.textContent = "";
    var first = document.createElement("option");
    first.value = "";
    first.textContent = "PCA of the codes (default)";
    select.appendChild(first);
    var top = dimsByKl(info).slice(0, PAIR_DIMS);
    var kl = info.kl_per_dim || [];
    for (var i = 0; i < top.length; i++) {
      for (var j = i + 1; j < top.length; j++) {
        var option = document.createElement("option");
        option.value = top[i] + "," + top[j];
        option.textContent = "z[" + top[i] + "] (KL " + Number(kl[top[i]] || 0).toFixed(2) + ") and z[" +
          top[j] + "] (KL " + Number(kl[top[j]] || 0).toFixed(2) + ")";
        select.appendChild(option);
      }
    }
  }

  // ---------------------------------------------------------------- sliders

  function sliderRange(info) {
    var c = info.clamp;
    if (typeof c === "number" && c > 0) { return [-c, c]; }
    if (Array.isArray(c) && c.length === 2) { return [Number(c[0]), Number(c[1])]; }
    if (c && typeof c === "object") {
      var lo = c.min !== undefined ? c.min : c.lo, hi = c.max !== undefined ? c.max : c.hi;
      if (typeof lo === "number" && typeof hi === "number" && hi > lo) { return [lo, hi]; }
    }
    return [-3, 3];
  }

  function setupSliders(info) {
    var holder = $("sliders");
    holder.textContent = "";
    var dims = (info.active || []).slice();
    if (dims.length === 0) {
      dims = dimsByKl(info).slice(0, Math.min(info.latent_dim, 8));
      var note = document.createElement("p");
      note.className = "hint";
      note.style.gridColumn = "1 / -1";
      note.textContent = "No dimension is active (every KL is small): the sliders show the dims with the largest KL.";
      holder.appendChild(note);
    }
    state.sliderDims = dims;
    var range = sliderRange(info), kl = info.kl_per_dim || [];
    dims.forEach(function (d) {
      var label = document.createElement("label");
      label.htmlFor = "slider-" + d;
      label.innerHTML = "";
      label.appendChild(document.createTextNode("z[" + d + "] "));
      var klSpan = document.createElement("span");
      klSpan.className = "kl";
      klSpan.textContent = "KL " + Number(kl[d] || 0).toFixed(2);
      label.appendChild(klSpan);
      var input = document.createElement("input");
      input.type = "range";
      input.id = "slider-" + d;
      input.className = "slider";
      input.dataset.dim = String(d);
      input.min = String(range[0]);
      input.max = String(range[1]);
      input.step = "0.01";
      input.value = "0";
      var value = document.createElement("span");
      value.className = "value";
      value.id = "slider-value-" + d;
      value.textContent = fmt(0);
      input.addEventListener("input", guard(function () {
        if (!state.sliderZ) { return; }
        state.sliderZ[d] = Number(input.value);
        value.textContent = fmt(state.sliderZ[d]);
        sliderDecoder.request(state.sliderZ.slice());
        drawMap();
      }));
      holder.appendChild(label);
      holder.appendChild(input);
      holder.appendChild(value);
    });
  }

  function showSliders(z) {
    state.sliderDims.forEach(function (d) {
      var input = $("slider-" + d);
      if (Number(input.min) > z[d]) { input.min = String(Math.floor(z[d])); }
      if (Number(input.max) < z[d]) { input.max = String(Math.ceil(z[d])); }
      input.value = String(z[d]);
      $("slider-value-" + d).textContent = fmt(z[d]);
    });
  }

  function readIndex(id) {
    var raw = $(id).value.trim(), n = state.info.test_images;
    var i = Number(raw);
    if (raw === "" || !Number.isInteger(i) || i < 0 || i >= n) {
      throw new Error("Choose a test image between 0 and " + (n - 1) + " (got \u201c" + raw + "\u201d).");
    }
    return i;
  }

  function loadCode() {
    var index = readIndex("code-index");
    return api("/api/code?index=" + index).then(function (answer) {
      if (!Array.isArray(answer.z) || answer.z.length !== state.info.latent_dim) {
        throw new Error("The server's code has the wrong length.");
      }
      state.code = {index: index, z: answer.z.slice(), label: answer.label};
      drawImage($("code-original"), answer.image);
      var name = className(answer.label);
      $("code-caption").textContent = "Test image " + index + (name ? " (" + name + ")" : "");
      resetSliders();
    });
  }

  function resetSliders() {
    if (!state.code) { return; }
    state.sliderZ = state.code.z.slice();
    showSliders(state.sliderZ);
    sliderDecoder.request(state.sliderZ.slice());
    drawMap();
  }

  // ---------------------------------------------------------------- interpolation

  function interpolate() {
    var a = readIndex("interp-a"), b = readIndex("interp-b");
    var steps = Number($("interp-steps").value);
    if (!Number.isInteger(steps) || steps < 2 || steps > 32) {
      throw new Error("Choose between 2 and 32 interpolation steps.");
    }
    setStatus("Interpolating\u2026");
    return api("/api/interpolate", {a: a, b: b, steps: steps}).then(function (answer) {
      drawImages($("interp-strip"), answer.images, function (i) { return "step " + i; });
      setStatus("Interpolated from test image " + a + " to " + b + ".", "ok");
    });
  }

  // ---------------------------------------------------------------- drawing and upload

  function setupDrawCanvas(info) {
    var c = $("draw");
    c.width = info.image_shape[2];
    c.height = info.image_shape[1];
    $("draw-caption").textContent = "Your drawing (" + c.width + "\u00d7" + c.height + ", the model's size)";
    clearDrawing();
  }

  function clearDrawing() {
    var c = $("draw"), ctx = c.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    state.drawDirty = false;
  }

  function pointerOnDraw(event) {
    var c = $("draw"), rect = c.getBoundingClientRect();
    return [(event.clientX - rect.left) * c.width / rect.width,
            (event.clientY - rect.top) * c.height / rect.height];
  }

  function stroke(from, to) {
    var c = $("draw"), ctx = c.getContext("2d");
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = Math.max(1, c.width / 11);
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
    state.drawDirty = true;
  }

  // The drawing as the API's pixels: C*H*W floats in 0..1 (grey for one channel).
  function drawingPixels() {
    var c = $("draw"), shape = state.info.image_shape;
    var channels = shape[0], hw = c.width * c.height;
    var rgba = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    var pixels = new Array(channels * hw);
    for (var i = 0; i < hw; i++) {
      var r = rgba[4 * i] / 255, g = rgba[4 * i + 1] / 255, b = rgba[4 * i + 2] / 255;
      if (channels === 3) {
        pixels[i] = r; pixels[hw + i] = g; pixels[2 * hw + i] = b;
      } else {
        var grey = (r + g + b) / 3;
        for (var k = 0; k < channels; k++) { pixels[k * hw + i] = grey; }
      }
    }
    return pixels;
  }

  function showEncoding(answer, body) {
    drawImage($("recon"), answer.reconstruction);
    var nll = Number(answer.nll);
    $("nll").textContent = isFinite(nll) ? nll.toFixed(2) : String(answer.nll);
    var point = Array.isArray(answer.point) ? answer.point : null;
    $("encode-point").textContent = point ? "(" + fmt(point[0]) + ", " + fmt(point[1]) + ")" : "\u2013";
    $("converted").textContent = answer.converted ? String(answer.converted) : "\u2013";
    // the server gives the point on the default map (PCA or the latent plane), whatever is shown
    state.drawn = {z: answer.z, point: point, mapKey: ""};
    drawMap();
    setStatus(body.image !== undefined ? "Upload encoded." : "Drawing encoded.", "ok");
  }

  var encoder = null;   // a Latest channel, made in start()

  function encodeDrawing() {
    encoder.request({pixels: drawingPixels()});
  }

  function upload(file) {
    if (!file) { return; }
    if (!/^image\/(png|jpeg)$/.test(file.type)) {
      throw new Error("Upload a PNG or JPEG image (this file is " + (file.type || "of an unknown type") + ").");
    }
    var reader = new FileReader();
    reader.onerror = function () { fail(new Error("The file could not be read.")); };
    reader.onload = guard(function () {
      var url = String(reader.result);
      var comma = url.indexOf(",");
      encoder.request({image: url.slice(comma + 1)});
      // show the file on the drawing canvas too (the server does its own conversion, see "Input")
      var img = new Image();
      img.onload = function () {
        var c = $("draw"), ctx = c.getContext("2d");
        ctx.fillStyle = "#000";
        ctx.fillRect(0, 0, c.width, c.height);
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(img, 0, 0, c.width, c.height);
        state.drawDirty = true;
      };
      img.onerror = function () { /* the server's answer says what is wrong with the file */ };
      img.src = url;
    });
    reader.readAsDataURL(file);
  }

  // ---------------------------------------------------------------- samples

  function loadSamples() {
    var seed = state.seed;
    return api("/api/samples?n=" + SAMPLES + "&seed=" + seed).then(function (answer) {
      drawImages($("samples"), answer.images, function (i) { return "sample " + i; });
      $("samples-seed").textContent = "seed " + seed;
    });
  }

  // ---------------------------------------------------------------- start

  var hoverDecoder = new Latest($("decoded"), decode, function (img, z) {
    drawImage($("decoded"), img);
    var p = state.map ? projectZ(z) : null;
    $("decoded-caption").textContent = p ? "Decoded point (" + fmt(p[0]) + ", " + fmt(p[1]) + ")" : "Decoded point";
  });
  var sampleDraws = 0;  // the seed of the next sample of p(x|z): a new one per decode
  var sliderDecoder = new Latest($("slider-image"), function (z) {
    if (!$("sample-toggle").checked) { return decode(z); }
    sampleDraws += 1;
    return api("/api/decode", {z: z, sample: true, seed: sampleDraws});
  }, function (img) {
    drawImage($("slider-image"), img);
    $("sample-figure").hidden = !img.sample;
    if (img.sample) {
      drawImage($("slider-sample"), img.sample);
      $("sample-caption").textContent = "A sample of p(x|z), seed " + img.seed;
    }
  });
  $("sample-toggle").addEventListener("change", guard(function () {
    if (state.sliderZ) { sliderDecoder.request(state.sliderZ.slice()); }
    else { $("sample-figure").hidden = true; }
  }));
  encoder = new Latest($("recon"), function (body) {
    return api("/api/encode", body).then(function (answer) { return {answer: answer, body: body}; });
  }, function (result) {
    showEncoding(result.answer, result.body);
  });

  function describe(info) {
    var shape = info.image_shape.join("\u00d7");
    var active = (info.active || []).length;
    return "Latent dimensions: " + info.latent_dim + " (" + active + " active) \u00b7 images " + shape +
      " \u00b7 " + info.test_images + " test images" +
      (Array.isArray(info.classes) ? " \u00b7 " + info.classes.length + " classes" : "");
  }

  function wire() {
    var map = $("map");
    map.addEventListener("pointermove", guard(function (event) {
      if (!state.map) { return; }
      var p = pointerOnMap(event);
      state.hover = p;
      drawMap();
      hoverDecoder.request(mapZ(p[0], p[1]));
    }));
    map.addEventListener("pointerleave", guard(function () {
      state.hover = null;
      drawMap();
    }));
    $("dims").addEventListener("change", guard(function () {
      loadMap($("dims").value).catch(fail);
    }));
    $("code-load").addEventListener("click", guard(function () { loadCode().catch(fail); }));
    $("code-index").addEventListener("change", guard(function () { loadCode().catch(fail); }));
    $("code-reset").addEventListener("click", guard(resetSliders));
    $("interp-go").addEventListener("click", guard(function () { interpolate().catch(fail); }));
    $("samples-refresh").addEventListener("click", guard(function () {
      state.seed += 1;
      loadSamples().catch(fail);
    }));

    var draw = $("draw");
    draw.addEventListener("pointerdown", guard(function (event) {
      if (!state.info) { return; }
      state.drawing = true;
      if (draw.setPointerCapture) {
        try { draw.setPointerCapture(event.pointerId); } catch (ignored) { /* synthetic pointer */ }
      }
      state.last = pointerOnDraw(event);
      stroke(state.last, state.last);
      event.preventDefault();
    }));
    draw.addEventListener("pointermove", guard(function (event) {
      if (!state.drawing) { return; }
      var p = pointerOnDraw(event);
      stroke(state.last, p);
      state.last = p;
    }));
    var finish = guard(function () {
      if (!state.drawing) { return; }
      state.drawing = false;
      encodeDrawing();
    });
    draw.addEventListener("pointerup", finish);
    draw.addEventListener("pointercancel", finish);
    $("draw-clear").addEventListener("click", guard(function () {
      clearDrawing();
      setStatus("Drawing cleared.", "ok");
    }));
    var input = $("upload");
    input.addEventListener("change", guard(function () {
      var file = input.files && input.files[0];
      try {
        upload(file);
      } finally {
        input.value = "";
      }
    }));
  }

  function start() {
    wire();
    setStatus("Loading the model\u2026");
    api("/api/info").then(function (info) {
      if (!Array.isArray(info.image_shape) || info.image_shape.length !== 3 || !(info.latent_dim > 0)) {
        throw new Error("The server's /api/info has no image_shape [C, H, W] or latent_dim.");
      }
      state.info = info;
      $("model-info").textContent = describe(info);
      if (info.decoder === "autoregressive") {  // its mean has no closed form: say what is drawn
        $("slider-caption").textContent = "Decoded sliders (the autoregressive decoder's mean-field pass)";
      }
      var last = Math.max(0, info.test_images - 1);
      ["code-index", "interp-a", "interp-b"].forEach(function (id) { $(id).max = String(last); });
      $("interp-b").value = String(Math.min(1, last));
      setupDims(info);
      setupSliders(info);
      setupDrawCanvas(info);
      return Promise.all([loadMap(""), loadCode(), loadSamples()]);
    }).then(function () {
      setStatus("Ready.", "ok");
      document.body.dataset.ready = "1";
    }).catch(fail);
  }

  start();
}());
