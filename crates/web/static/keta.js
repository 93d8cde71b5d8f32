// Keta: small progressive enhancements (running clocks and countdowns). Every page works
// without this file; the server renders the true state and times on each load.
(function () {
  'use strict';

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function hms(total) {
    var s = Math.abs(Math.floor(total));
    return (total < 0 ? '-' : '') + Math.floor(s / 3600) + ':' + pad(Math.floor((s % 3600) / 60)) + ':' + pad(s % 60);
  }

  function ms(total) {
    var s = Math.abs(Math.floor(total));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    return (h > 0 ? h + ':' + pad(m) : String(m)) + ':' + pad(s % 60);
  }

  // Each element counts from the moment it was rendered, so elements swapped in later
  // (the live board) keep their own server-given starting values.
  function since(el) {
    if (el._ketaStart === undefined) { el._ketaStart = Date.now(); }
    return (Date.now() - el._ketaStart) / 1000;
  }

  function tick() {
    var clocks = document.querySelectorAll('[data-elapsed]');
    for (var i = 0; i < clocks.length; i++) {
      var c = clocks[i];
      if (c.hasAttribute('data-stopped')) { continue; }
      c.textContent = hms(Number(c.getAttribute('data-elapsed')) + since(c));
    }
    var downs = document.querySelectorAll('[data-countdown]');
    for (var j = 0; j < downs.length; j++) {
      var d = downs[j];
      var left = Number(d.getAttribute('data-countdown')) - since(d);
      if (left > 0) {
        d.textContent = 'in ' + ms(left);
        d.classList.remove('due');
      } else {
        d.textContent = (d.getAttribute('data-done-text') || 'now') + (left < -60 ? ' (' + ms(-left) + ' ago)' : '');
        d.classList.add('due');
      }
    }
  }

  // The live board's connection state, shown to staff (and waited on by the tests).
  function liveState(state, text) {
    var live = document.querySelector('.live');
    if (!live) { return; }
    live.setAttribute('data-live-state', state);
    var status = document.getElementById('live-status');
    if (status) { status.textContent = text; }
  }

  // Escalated alerts (issue 18): where the site turned the alarm on, a short tone for each alert
  // newly escalated on this screen. Browsers play sound only after a click on the page, so the
  // board offers a button once; the tone is generated (WebAudio), nothing is downloaded.
  var alarm = { ctx: null, heard: {} };

  function tone() {
    if (!alarm.ctx) { return; }
    var t = alarm.ctx.currentTime;
    [0, 0.35].forEach(function (at) {
      var osc = alarm.ctx.createOscillator();
      var gain = alarm.ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, t + at);
      gain.gain.exponentialRampToValueAtTime(0.3, t + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.25);
      osc.connect(gain);
      gain.connect(alarm.ctx.destination);
      osc.start(t + at);
      osc.stop(t + at + 0.3);
    });
  }

  function escalations() {
    var buttons = document.querySelectorAll('[data-sound-allow]');
    for (var b = 0; b < buttons.length; b++) { buttons[b].hidden = alarm.ctx !== null; }
    var boxes = document.querySelectorAll('.board-escalated[data-sound="on"]');
    var fresh = false;
    for (var i = 0; i < boxes.length; i++) {
      var ids = (boxes[i].getAttribute('data-escalated') || '').split(' ');
      for (var j = 0; j < ids.length; j++) {
        if (ids[j] && !alarm.heard[ids[j]]) { alarm.heard[ids[j]] = true; fresh = true; }
      }
    }
    if (fresh) { tone(); }
  }

  function allowSound(ev) {
    if (!ev.target.closest || !ev.target.closest('[data-sound-allow]')) { return; }
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return; }
    alarm.ctx = alarm.ctx || new Ctx();
    alarm.ctx.resume();
    alarm.heard = {}; // sound for what is already escalated, now that it can be heard
    escalations();
  }

  // The session screen keeps the patient's name in view (issue 15): its head is sticky, open
  // alerts stick below it, and a section reached after an action (/sessions/1#vitals) lands
  // below both instead of under them. CSS reads the heights from these variables.
  function stickyHeads() {
    var head = document.querySelector('.session-head');
    if (!head) return;
    var alerts = document.querySelector('.alerts-open');
    var root = document.documentElement.style;
    function measure() {
      root.setProperty('--session-head-h', head.offsetHeight + 'px');
      root.setProperty('--alerts-h', (alerts ? alerts.offsetHeight : 0) + 'px');
    }
    measure();
    if ('ResizeObserver' in window) {
      var ro = new ResizeObserver(measure);
      ro.observe(head);
      if (alerts) ro.observe(alerts);
    }
    // The browser may have jumped to the fragment before the heights were known.
    var target = window.location.hash ? document.getElementById(window.location.hash.slice(1)) : null;
    if (target) target.scrollIntoView();
  }

  function start() {
    stickyHeads();
    tick();
    window.setInterval(tick, 1000);
    escalations();
    document.body.addEventListener('click', allowSound);
    // "Print" buttons on the ledger's documents (no inline handlers under the CSP).
    document.body.addEventListener('click', function (ev) {
      if (ev.target.closest && ev.target.closest('[data-print]')) { window.print(); }
    });
    document.body.addEventListener('htmx:afterSettle', escalations);
    document.body.addEventListener('htmx:sseMessage', escalations);
    document.body.addEventListener('htmx:sseOpen', function () { liveState('open', 'Live updates on'); });
    document.body.addEventListener('htmx:sseError', function () { liveState('error', 'Live updates interrupted; reconnecting…'); });
    document.body.addEventListener('htmx:sseClose', function () { liveState('closed', 'Live updates paused; reload the page'); });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
