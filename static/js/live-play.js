/* A learner's live quiz screen: joins with the player token, follows the room's numbered
   events (a gap, a `tick` ahead or a reconnect re-syncs from a snapshot), answers with ids
   kept per question in sessionStorage so a resend after a reconnect reuses the same id. */
"use strict";

(function () {
  const L = window.Live;
  const $ = L.$;
  const root = $("live-play");
  const sessionId = root.dataset.sessionId;
  const storeKey = "lms-live:" + sessionId;
  let token = root.dataset.playerToken || sessionStorage.getItem(storeKey + ":token");
  if (root.dataset.playerToken) sessionStorage.setItem(storeKey + ":token", root.dataset.playerToken);

  const REFUSALS = {
    late: "Too late: time was up when your answer arrived.",
    already_answered: "You already answered this question.",
    question_not_open: "This question is not open any more.",
    question_closed: "This question is closed.",
    kicked: "The host removed you from this quiz.",
    invalid_response: "This answer does not fit the question.",
    validation_failed: "This answer does not fit the question.",
    rate_limited: "Slow down a little, then try again.",
  };

  const state = {
    seq: 0, joined: false, syncing: false, again: false, kicked: false,
    phase: null, index: -1, count: 0, question: null, limit: 0,
    deadline: null, paused: null, me: null, rendered: null, locked: false,
  };

  function message(title, text) {
    $("m-title").textContent = title;
    $("m-text").textContent = text;
    L.view("message");
  }

  if (!token) {
    message("You have not joined this quiz", "Open the join link or enter the code again.");
    L.status("");
    return;
  }

  const socket = io("/live", { auth: { player_token: token }, transports: ["websocket"] });

  function answerKey(index) { return storeKey + ":answer:" + index; }
  function stored(index) {
    try { return JSON.parse(sessionStorage.getItem(answerKey(index)) || "null"); } catch (e) { return null; }
  }
  function store(index, entry) { sessionStorage.setItem(answerKey(index), JSON.stringify(entry)); }

  function newAnswerId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function setMe(player) {
    if (!player) return;
    state.me = player;
    $("live-nickname").textContent = player.nickname;
    $("lobby-nickname").textContent = player.nickname;
    $("live-score").textContent = player.score;
  }

  function factor() { return (state.me && state.me.time_factor) || 1; }

  // ------------------------------------------------------------------ syncing

  async function resync() {
    if (state.syncing) { state.again = true; return; }
    state.syncing = true;
    try {
      do {
        state.again = false;
        const ack = await L.call(socket, state.joined ? "sync" : "join", { last_seq: state.seq });
        if (ack.ok) {
          state.joined = true;
          state.seq = ack.seq;
          render(ack.snapshot);
        } else if (ack.error && ack.error.code === "kicked") {
          kicked(false);
        } else if (ack.error && ack.error.code !== "timeout") {
          L.status(ack.error.message);
        }
      } while (state.again && !state.kicked);
    } finally {
      state.syncing = false;
    }
  }

  /* A numbered room event: applied in order; a gap re-syncs instead. */
  function numbered(handler) {
    return function (data) {
      if (state.kicked || !data || typeof data.seq !== "number") return;
      if (!state.joined || state.syncing) { state.again = state.syncing; return; }
      if (data.seq <= state.seq) return;
      if (data.seq > state.seq + 1) { resync(); return; }
      state.seq = data.seq;
      handler(data);
    };
  }

  // ------------------------------------------------------------------ rendering

  function render(snap) {
    $("live-title").textContent = snap.quiz_title;
    document.title = snap.quiz_title + " · lms_live";
    setMe(snap.player);
    state.phase = snap.phase;
    state.index = snap.index;
    state.count = snap.count;
    if (snap.question) {
      state.question = snap.question;
      state.limit = snap.time_limit_ms;
    }
    if (snap.phase === "lobby") {
      L.view("lobby");
      L.status("Connected");
    } else if (snap.phase === "question_open") {
      state.deadline = L.ms(snap.deadline);
      state.paused = L.ms(snap.paused_at);
      showQuestion(snap.my_answer);
    } else if (snap.phase === "question_closed" && snap.reveal) {
      showReveal(snap.reveal, snap.player);
    } else if (snap.phase === "question_closed") {
      message("Question skipped", "Waiting for the next question.");
    } else if (snap.phase === "leaderboard") {
      showBoard(snap.leaderboard);
    } else if (snap.phase === "finished") {
      showFinished(snap.podium, snap.leaderboard);
    }
  }

  function showQuestion(myAnswer) {
    const q = state.question;
    const key = "q:" + state.index;
    L.view("question");
    L.status("");
    if (state.rendered !== key) {
      state.rendered = key;
      state.locked = false;
      $("q-number").textContent = state.index + 1;
      $("q-count").textContent = state.count;
      $("q-prompt").textContent = q.prompt;
      L.show("q-locked", false);
      L.show("q-refused", false);
      buildAnswer(q, state.index);
    }
    if (myAnswer && myAnswer.index === state.index) {
      const entry = stored(state.index) || {};
      store(state.index, { answer_id: myAnswer.answer_id, response: myAnswer.response, state: "accepted" });
      if (!state.locked || entry.state !== "accepted") lockIn(myAnswer.response);
      return;
    }
    const pending = stored(state.index);
    if (pending && pending.state === "pending") send(state.index, pending);
    tick();
  }

  function optionButton(label, text, index) {
    const button = L.el("button", null, "live-option live-option-" + (index % 4));
    button.type = "button";
    button.dataset.value = label;
    button.appendChild(L.el("span", String.fromCharCode(65 + index), "live-option-key"));
    button.appendChild(L.el("span", text, "live-option-text"));
    return button;
  }

  function submitButton(onClick) {
    const button = L.el("button", "Submit answer", "button live-submit");
    button.type = "button";
    button.addEventListener("click", onClick);
    return button;
  }

  function buildAnswer(q, index) {
    const box = $("q-answer");
    L.clear(box);
    const type = q.type;
    if (type === "single_choice") {
      q.options.forEach(function (option, i) {
        const button = optionButton(option.id, option.text, i);
        button.addEventListener("click", function () { submit(index, { choice: option.id }); });
        box.appendChild(button);
      });
    } else if (type === "true_false") {
      [[true, "True"], [false, "False"]].forEach(function (pair, i) {
        const button = optionButton(String(pair[0]), pair[1], i);
        button.addEventListener("click", function () { submit(index, { value: pair[0] }); });
        box.appendChild(button);
      });
    } else if (type === "multiple_choice") {
      q.options.forEach(function (option, i) {
        const button = optionButton(option.id, option.text, i);
        button.setAttribute("aria-pressed", "false");
        button.addEventListener("click", function () {
          const on = button.getAttribute("aria-pressed") !== "true";
          button.setAttribute("aria-pressed", on ? "true" : "false");
        });
        box.appendChild(button);
      });
      box.appendChild(submitButton(function () {
        const chosen = Array.from(box.querySelectorAll('[aria-pressed="true"]')).map(function (b) { return b.dataset.value; });
        if (!chosen.length) { refuse("Choose at least one answer."); return; }
        submit(index, { choices: chosen });
      }));
    } else if (type === "numeric" || type === "short_text") {
      const label = L.el("label", type === "numeric" ? "Your number" : "Your answer", "label");
      label.htmlFor = "q-input";
      const input = L.el("input", null, "input live-input");
      input.id = "q-input";
      input.autocomplete = "off";
      if (type === "numeric") input.inputMode = "decimal";
      const go = function () {
        const raw = input.value.trim();
        if (type === "short_text") {
          if (!raw) { refuse("Type an answer first."); return; }
          submit(index, { text: raw });
          return;
        }
        const value = Number(raw.replace(",", "."));
        if (!raw || !Number.isFinite(value)) { refuse("Type a number, like 42 or 3.5."); return; }
        submit(index, { value: value });
      };
      input.addEventListener("keydown", function (e) { if (e.key === "Enter") go(); });
      box.appendChild(label);
      box.appendChild(input);
      box.appendChild(submitButton(go));
    } else if (type === "ordering") {
      const list = L.el("ol", null, "live-order");
      const move = function (item, delta) {
        const items = Array.from(list.children);
        const at = items.indexOf(item) + delta;
        if (at < 0 || at >= items.length) return;
        if (delta < 0) list.insertBefore(item, items[at]);
        else list.insertBefore(item, items[at].nextSibling);
      };
      q.items.forEach(function (entry) {
        const item = L.el("li", null, "live-order-item");
        item.dataset.value = entry.id;
        item.appendChild(L.el("span", entry.text, "live-order-text"));
        const up = L.el("button", "↑", "live-move");
        up.type = "button";
        up.setAttribute("aria-label", "Move up: " + entry.text);
        up.addEventListener("click", function () { move(item, -1); });
        const down = L.el("button", "↓", "live-move");
        down.type = "button";
        down.setAttribute("aria-label", "Move down: " + entry.text);
        down.addEventListener("click", function () { move(item, 1); });
        item.appendChild(up);
        item.appendChild(down);
        list.appendChild(item);
      });
      box.appendChild(list);
      box.appendChild(submitButton(function () {
        submit(index, { order: Array.from(list.children).map(function (li) { return li.dataset.value; }) });
      }));
    } else {
      box.appendChild(L.el("p", "This question cannot be answered here."));
    }
  }

  function setEnabled(enabled) {
    $("q-answer").querySelectorAll("button, input").forEach(function (node) { node.disabled = !enabled; });
  }

  function refuse(text) {
    const node = $("q-refused");
    node.textContent = text;
    node.hidden = false;
  }

  function markChosen(response) {
    const chosen = new Set();
    if ("choice" in response) chosen.add(response.choice);
    if ("choices" in response) response.choices.forEach(function (c) { chosen.add(c); });
    if (typeof response.value === "boolean") chosen.add(String(response.value));
    $("q-answer").querySelectorAll(".live-option").forEach(function (button) {
      button.classList.toggle("live-chosen", chosen.has(button.dataset.value));
    });
  }

  function lockIn(response) {
    state.locked = true;
    setEnabled(false);
    markChosen(response);
    L.show("q-refused", false);
    const node = $("q-locked");
    node.textContent = "Answer locked in: " + L.describe(state.question, response);
    node.hidden = false;
  }

  function submit(index, response) {
    if (state.locked || index !== state.index || state.phase !== "question_open") return;
    let entry = stored(index);
    if (!entry || entry.state === "refused" || JSON.stringify(entry.response) !== JSON.stringify(response)) {
      entry = { answer_id: newAnswerId(), response: response, state: "pending" };
    }
    entry.state = "pending";
    store(index, entry);
    send(index, entry);
  }

  async function send(index, entry) {
    setEnabled(false);
    L.show("q-refused", false);
    const node = $("q-locked");
    node.textContent = "Sending your answer…";
    node.hidden = false;
    const ack = await L.call(socket, "answer", {
      question: index, answer_id: entry.answer_id, response: entry.response,
    });
    if (index !== state.index) return;
    if (ack.ok || (ack.error && ack.error.code === "already_answered")) {
      entry.state = "accepted";
      store(index, entry);
      lockIn(entry.response);
      return;
    }
    const code = ack.error ? ack.error.code : "";
    if (code === "timeout") { node.textContent = "Reconnecting… your answer will be sent again."; return; }
    entry.state = "refused";
    store(index, entry);
    node.hidden = true;
    refuse(REFUSALS[code] || (ack.error && ack.error.message) || "Your answer was not accepted.");
    if (code === "invalid_response" || code === "validation_failed" || code === "rate_limited") setEnabled(true);
  }

  function tick() {
    if (state.phase !== "question_open" || state.deadline === null) return;
    const left = L.secondsLeft(state.deadline, state.paused);
    const node = $("q-countdown");
    node.textContent = state.paused !== null ? "Paused · " + left : String(left);
    node.classList.toggle("live-hurry", left <= 5);
    if (left === 0 && !state.locked) {
      setEnabled(false);
      const locked = $("q-locked");
      if (locked.hidden) { locked.textContent = "Time is up!"; locked.hidden = false; }
    }
  }
  setInterval(tick, 200);

  function revealAnswer(q, right, mine) {
    const box = $("r-answer");
    L.clear(box);
    if (!q) return;
    if (q.type === "single_choice" || q.type === "multiple_choice") {
      const rightSet = new Set(right ? ("choice" in right ? [right.choice] : right.choices || []) : []);
      const mineSet = new Set(mine ? ("choice" in mine ? [mine.choice] : mine.choices || []) : []);
      const list = L.el("ul", null, "live-reveal-options");
      q.options.forEach(function (option) {
        const item = L.el("li", option.text, "live-reveal-option");
        if (rightSet.has(option.id)) { item.classList.add("live-right"); item.appendChild(L.el("span", " ✓ right answer", "live-tag")); }
        if (mineSet.has(option.id)) { item.classList.add("live-yours"); item.appendChild(L.el("span", " · your answer", "live-tag")); }
        list.appendChild(item);
      });
      box.appendChild(list);
      return;
    }
    box.appendChild(L.el("p", "Right answer: " + L.describe(q, right), "live-right"));
    if (mine) box.appendChild(L.el("p", "Your answer: " + L.describe(q, mine), "live-yours"));
  }

  function verdict(player, index) {
    const last = player && player.last;
    if (!last || last.index !== index || last.state === "unanswered") return ["No answer", "live-verdict-none"];
    if (last.correct) return ["Correct!", "live-verdict-right"];
    if (last.points > 0) return ["Partly right", "live-verdict-part"];
    return ["Wrong", "live-verdict-wrong"];
  }

  function rankText(player) {
    if (!player || !player.rank) return "";
    return "You are #" + player.rank + " with " + player.score + " points";
  }

  function showReveal(reveal, player) {
    state.rendered = "r:" + reveal.index;
    setMe(player);
    const mineEntry = stored(reveal.index);
    const mine = mineEntry && mineEntry.state === "accepted" ? mineEntry.response : null;
    const v = verdict(player, reveal.index);
    const title = $("r-verdict");
    title.textContent = v[0];
    title.className = "live-verdict " + v[1];
    const last = player && player.last;
    $("r-points").textContent = last && last.index === reveal.index ? "+" + last.points + " points" : "";
    $("r-prompt").textContent = state.question ? state.question.prompt : "";
    revealAnswer(state.question, reveal.right_answer, mine);
    $("r-rank").textContent = rankText(player);
    L.board($("r-board"), reveal.leaderboard, player && player.player_id);
    L.view("reveal");
    L.status("");
  }

  function showBoard(entries) {
    state.rendered = "b:" + state.index;
    $("b-rank").textContent = rankText(state.me);
    L.board($("b-board"), entries, state.me && state.me.player_id);
    L.view("board");
  }

  function showFinished(podium, entries) {
    state.rendered = "f";
    const me = state.me;
    $("f-result").textContent = me && me.rank ? "You finished #" + me.rank + " with " + me.score + " points" : "";
    L.podium($("f-podium"), podium);
    L.board($("f-board"), entries, me && me.player_id);
    L.view("finished");
    L.status("");
  }

  async function refreshMe() {
    const ack = await L.call(socket, "me", {});
    if (ack.ok) setMe(ack.player);
    return state.me;
  }

  function kicked(banned) {
    state.kicked = true;
    sessionStorage.removeItem(storeKey + ":token");
    message("You were removed from this quiz", banned ? "The host removed you and you cannot join again." : "The host removed you from this quiz.");
    L.status("");
  }

  // ------------------------------------------------------------------ events

  socket.on("connect", async function () {
    L.status("Connected");
    await L.syncClock(socket, 5);
    resync();
  });
  socket.on("disconnect", function (reason) {
    if (state.kicked) return;
    L.status("Connection lost. Reconnecting…");
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", function (err) {
    const code = err && err.data && err.data.code;
    if (code === "kicked") { kicked(true); socket.disconnect(); return; }
    if (code === "invalid_player_token" || code === "session_not_found" || code === "unauthorized" || code === "token_revoked") {
      socket.disconnect();
      message("Cannot join this quiz", err.message || "Open the join link again.");
      L.status("");
      return;
    }
    L.status("Connection lost. Reconnecting…");
  });

  socket.on("session_started", numbered(function () {}));
  socket.on("question_opened", numbered(function (data) {
    state.phase = "question_open";
    state.index = data.index;
    state.count = data.count;
    state.question = data.question;
    state.limit = data.time_limit_ms;
    state.deadline = L.ms(data.opened_at) + data.time_limit_ms * factor();
    state.paused = null;
    showQuestion(null);
  }));
  socket.on("clock_paused", numbered(function (data) {
    if (data.index === state.index) state.paused = L.ms(data.paused_at);
    tick();
  }));
  socket.on("clock_resumed", numbered(function (data) {
    if (data.index !== state.index) return;
    state.paused = null;
    state.deadline = L.ms(data.opened_at) + state.limit * factor();
    tick();
  }));
  socket.on("question_closed", numbered(async function (data) {
    state.phase = "question_closed";
    state.index = data.index;
    const player = await refreshMe();
    showReveal(data, player);
  }));
  socket.on("leaderboard", numbered(function (data) {
    state.phase = "leaderboard";
    showBoard(data.leaderboard);
  }));
  socket.on("question_skipped", numbered(function () {
    state.phase = "question_closed";
    state.rendered = null;
    message("Question skipped", "The host skipped this question. Waiting for the next one.");
  }));
  socket.on("session_finished", numbered(async function (data) {
    state.phase = "finished";
    await refreshMe();
    showFinished(data.podium, data.leaderboard);
  }));
  socket.on("tick", function (data) {
    if (state.joined && data && typeof data.seq === "number" && data.seq > state.seq) resync();
  });
  socket.on("kicked", function (data) { kicked(Boolean(data && data.banned)); });
})();
