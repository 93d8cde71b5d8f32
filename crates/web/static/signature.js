// Signature pad for consent forms (issue 12): draws with a finger, pen or mouse on a
// <canvas data-signature-for="INPUT_ID"> and keeps the strokes as SVG path data
// ("M x y L x y ...", scaled to a 10000 x 3000 box) in the hidden input. No inline script.
(function () {
  'use strict';
  var W = 10000, H = 3000;

  function pad(canvas) {
    var input = document.getElementById(canvas.getAttribute('data-signature-for'));
    if (!input) { return; }
    var ctx = canvas.getContext('2d');
    var drawing = false;
    var path = input.value || '';
    ctx.lineWidth = 2.5;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.strokeStyle = '#111';

    function point(ev) {
      var r = canvas.getBoundingClientRect();
      var x = Math.max(0, Math.min(W, Math.round((ev.clientX - r.left) / r.width * W)));
      var y = Math.max(0, Math.min(H, Math.round((ev.clientY - r.top) / r.height * H)));
      return [x, y];
    }
    function toCanvas(p) { return [p[0] / W * canvas.width, p[1] / H * canvas.height]; }

    function redraw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      var cmds = path.match(/[ML][^ML]*/g) || [];
      ctx.beginPath();
      cmds.forEach(function (c) {
        var n = c.slice(1).trim().split(/[ ,]+/).map(Number);
        if (n.length < 2) { return; }
        var q = toCanvas(n);
        if (c[0] === 'M') { ctx.moveTo(q[0], q[1]); } else { ctx.lineTo(q[0], q[1]); }
      });
      ctx.stroke();
    }

    canvas.addEventListener('pointerdown', function (ev) {
      ev.preventDefault();
      drawing = true;
      if (canvas.setPointerCapture) { canvas.setPointerCapture(ev.pointerId); }
      var p = point(ev);
      path += (path ? ' ' : '') + 'M ' + p[0] + ' ' + p[1];
      input.value = path;
    });
    canvas.addEventListener('pointermove', function (ev) {
      if (!drawing) { return; }
      ev.preventDefault();
      var p = point(ev);
      path += ' L ' + p[0] + ' ' + p[1];
      input.value = path;
      redraw();
    });
    function end() { drawing = false; }
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
    canvas.addEventListener('pointerleave', end);

    var clear = document.querySelector('[data-signature-clear="' + input.id + '"]');
    if (clear) {
      clear.addEventListener('click', function () { path = ''; input.value = ''; redraw(); });
    }
    redraw();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll('canvas[data-signature-for]'), pad);
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
