/* The host's live quiz screen: connects with the page cookie, sends `host`, and re-reads the
   host snapshot whenever the session moves (the snapshot is small and carries the right
   answer); players come and go from the hosts' stream, counts from `dashboard`. */
"use strict";

(function () {
  const L = window.Live;
  const $ = L.$;
  const root = $("live-host");
  const sessionId = root.dataset.sessionId;
  const state = {
    seq: 0, hostSeq: 0, joined: false, syncing: false, again: false,
    snap: null, players: new Map(), limit: 0, openedAt: null, paused: null,
  };
  const PHASES = {
    lobby: "Lobby: waiting for players",
    question_open: "Question open",
    question_closed: "Question closed",
    leaderboard: "Leaderboard",
    finished: "Finished",
  };
  const ENABLED = {
    lobby: ["start", "end"],
    question_open: ["close_question", "pause", "resume", "skip", "end"],
    question_closed: ["next", "skip", "end"],
    leaderboard: ["next", "end"],
    finished: [],
  };

  const socket = io("/live", { transports: ["websocket"] });

  async function resync() {
    if (state.syncing) { state.again = true; return; }
    state.syncing = true;
    try {
      do {
        state.again = false;
        const ack = await L.call(socket, "host", { session_id: sessionId, last_seq: state.seq });
        if (ack.ok) {
          state.joined = true;
          state.seq = ack.seq;
          state.hostSeq = ack.host_seq;
          render(ack.snapshot);
        } else if (ack.error && ack.error.code !== "timeout") {
          L.status(ack.error.message);
        }
      } while (state.again);
    } finally {
      state.syncing = false;
    }
  }

  function render(snap) {
    state.snap = snap;
    $("h-phase").textContent = PHASES[snap.phase] || snap.phase;
    $("h-code").textContent = snap.code;
    state.players = new Map(snap.players.map(function (p) { return [p.id, p]; }));
    renderPlayers();
    $("h-answered").textContent = snap.answered;
    const allowed = ENABLED[snap.phase] || [];
    document.querySelectorAll("[data-action]").forEach(function (button) {
      let on = allowed.indexOf(button.dataset.action) >= 0;
      if (button.dataset.action === "pause") on = on && !snap.paused_at;
      if (button.dataset.action === "resume") on = on && Boolean(snap.paused_at);
      button.disabled = !on;
    });
    state.limit = snap.time_limit_ms || 0;
    state.openedAt = L.ms(snap.opened_at);
    state.paused = L.ms(snap.paused_at);
    const question = snap.phase !== "finished" && snap.phase !== "lobby" ? snap.question : null;
    L.show("h-question", Boolean(question));
    if (question) {
      $("h-number").textContent = snap.index + 1;
      $("h-count").textContent = snap.count;
      $("h-prompt").textContent = question.prompt;
      renderOptions(question, snap.right_answer, snap.distribution);
      $("h-right").textContent = "Right answer: " + L.describe(question, snap.right_answer);
    }
    const board = snap.phase === "finished" ? snap.leaderboard
      : snap.leaderboard || (snap.reveal && snap.reveal.leaderboard);
    L.show("h-board-wrap", Boolean(board && board.length));
    L.board($("h-board"), board);
    L.show("h-final", snap.phase === "finished");
    L.podium($("h-podium"), snap.podium);
    tick();
    L.status("Connected");
  }

  function rightLabels(right) {
    if (!right) return new Set();
    if ("choice" in right) return new Set([right.choice]);
    if ("choices" in right) return new Set(right.choices);
    if (typeof right.value === "boolean") return new Set([String(right.value)]);
    return new Set();
  }

  function renderOptions(question, right, distribution) {
    const list = $("h-options");
    L.clear(list);
    const counts = distribution || {};
    const rights = rightLabels(right);
    let entries = [];
    if (question.options) entries = question.options.map(function (o) { return [o.id, o.text]; });
    else if (question.type === "true_false") entries = [["true", "True"], ["false", "False"]];
    else entries = Object.keys(counts).map(function (k) { return [k, k]; });
    entries.forEach(function (pair) {
      const item = L.el("li", null, rights.has(pair[0]) ? "live-right" : "");
      item.dataset.key = pair[0];
      item.appendChild(L.el("span", pair[1], "live-host-option-text"));
      item.appendChild(L.el("span", " " + (counts[pair[0]] || 0), "live-count"));
      list.appendChild(item);
    });
  }

  function updateCounts(distribution) {
    $("h-options").querySelectorAll("li").forEach(function (item) {
      const count = item.querySelector(".live-count");
      if (count) count.textContent = " " + ((distribution || {})[item.dataset.key] || 0);
    });
  }

  function renderPlayers() {
    const list = $("h-player-list");
    L.clear(list);
    let shown = 0;
    state.players.forEach(function (player) {
      if (player.kicked || player.banned) return;
      shown += 1;
      const item = L.el("li", null, player.connected === false ? "live-offline" : "");
      item.appendChild(L.el("span", player.nickname, "live-player-name"));
      if (player.guest) item.appendChild(L.el("span", " (guest)", "live-tag"));
      if (typeof player.score === "number") item.appendChild(L.el("span", " " + player.score, "live-count"));
      [["Kick", false], ["Ban", true]].forEach(function (pair) {
        const button = L.el("button", pair[0], "live-small");
        button.type = "button";
        button.setAttribute("aria-label", pair[0] + " " + player.nickname);
        button.addEventListener("click", async function () {
          const ack = await L.call(socket, "kick", { player_id: player.id, ban: pair[1] });
          if (!ack.ok) error(ack.error.message);
        });
        item.appendChild(button);
      });
      list.appendChild(item);
    });
    $("h-players").textContent = shown;
  }

  function error(text) {
    const node = $("h-error");
    node.textContent = text;
    node.hidden = !text;
  }

  function tick() {
    const node = $("h-countdown");
    const snap = state.snap;
    if (!snap || snap.phase !== "question_open" || state.openedAt === null) { node.textContent = ""; return; }
    const left = L.secondsLeft(state.openedAt + state.limit, state.paused);
    node.textContent = (state.paused !== null ? "Paused · " : "") + left + " s";
  }
  setInterval(tick, 250);

  document.querySelectorAll("[data-action]").forEach(function (button) {
    button.addEventListener("click", async function () {
      error("");
      button.disabled = true;
      const ack = await L.call(socket, button.dataset.action, { session_id: sessionId });
      if (!ack.ok) { error(ack.error.message); button.disabled = false; return; }
      resync();
    });
  });

  /* A room event: re-read the snapshot (the seq check only avoids needless reads). */
  function moved(data) {
    if (!data || typeof data.seq !== "number" || data.seq > state.seq) resync();
  }

  function hostEvent(handler) {
    return function (data) {
      if (!state.joined || !data || typeof data.host_seq !== "number") return;
      if (data.host_seq <= state.hostSeq) return;
      if (data.host_seq > state.hostSeq + 1) { resync(); return; }
      state.hostSeq = data.host_seq;
      handler(data);
    };
  }

  socket.on("connect", async function () {
    L.status("Connected");
    await L.syncClock(socket, 5);
    resync();
  });
  socket.on("disconnect", function (reason) {
    L.status("Connection lost. Reconnecting…");
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", function (err) {
    L.status((err && err.message) || "Cannot connect. Retrying…");
  });
  ["session_started", "question_opened", "clock_paused", "clock_resumed", "question_closed",
    "leaderboard", "question_skipped", "session_finished"].forEach(function (name) {
    socket.on(name, moved);
  });
  socket.on("player_joined", hostEvent(function (data) {
    state.players.set(data.player.id, Object.assign({ connected: true, score: 0 }, data.player));
    renderPlayers();
  }));
  socket.on("player_left", hostEvent(function (data) {
    const player = state.players.get(data.player_id);
    if (player) { player.connected = false; renderPlayers(); }
  }));
  socket.on("player_kicked", hostEvent(function (data) {
    const player = state.players.get(data.player_id);
    if (player) { player.kicked = true; player.banned = data.banned; renderPlayers(); }
  }));
  socket.on("dashboard", function (data) {
    if (!state.joined || !data) return;
    if (data.seq > state.seq || data.host_seq > state.hostSeq) { resync(); return; }
    $("h-answered").textContent = data.answered;
    $("h-connected").textContent = data.connected;
    updateCounts(data.distribution);
  });
  socket.on("tick", moved);
})();
