/* Live quiz pages: what the play and host scripts share. Text is always set with
   textContent (data never becomes markup); the server's clock is the one that counts. */
"use strict";

window.Live = (function () {
  function $(id) { return document.getElementById(id); }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function show(id, visible) { $(id).hidden = !visible; }

  /* Only one of the `.live-view` sections is visible. */
  function view(name) {
    document.querySelectorAll(".live-view").forEach(function (section) {
      section.hidden = section.id !== "view-" + name;
    });
  }

  function status(text) { $("live-status").textContent = text; }

  /* The server clock, NTP-style: several `clock` round trips, keep the lowest. */
  const clock = { offset: 0, rtt: Infinity };

  async function syncClock(socket, samples) {
    for (let i = 0; i < (samples || 5); i++) {
      const sent = Date.now();
      let ack;
      try { ack = await socket.timeout(3000).emitWithAck("clock", {}); } catch (e) { continue; }
      const received = Date.now();
      if (!ack || !ack.ok) continue;
      const rtt = received - sent;
      if (rtt <= clock.rtt) {
        clock.rtt = rtt;
        clock.offset = ack.epoch_ms - (sent + received) / 2;
      }
    }
  }

  function serverNow() { return Date.now() + clock.offset; }

  function ms(iso) { return iso ? Date.parse(iso) : null; }

  /* Seconds left before `deadlineMs` (frozen at `pausedMs` while paused). */
  function secondsLeft(deadlineMs, pausedMs) {
    const now = pausedMs !== null && pausedMs !== undefined ? pausedMs : serverNow();
    return Math.max(0, Math.ceil((deadlineMs - now) / 1000));
  }

  function call(socket, event, data) {
    return socket.timeout(8000).emitWithAck(event, data || {}).catch(function () {
      return { ok: false, error: { code: "timeout", message: "No answer from the server; retrying." } };
    });
  }

  function board(container, entries, highlight) {
    clear(container);
    if (!entries || !entries.length) return;
    const table = el("table", null, "live-table");
    const head = el("tr");
    ["Rank", "Player", "Score"].forEach(function (h) { head.appendChild(el("th", h)); });
    table.appendChild(head);
    entries.forEach(function (entry) {
      const row = el("tr", null, entry.player_id === highlight ? "live-mine" : "");
      row.appendChild(el("td", entry.rank));
      row.appendChild(el("td", entry.nickname));
      row.appendChild(el("td", entry.score));
      table.appendChild(row);
    });
    container.appendChild(table);
  }

  function podium(list, entries) {
    clear(list);
    (entries || []).forEach(function (entry) {
      const item = el("li", null, "live-podium-" + entry.rank);
      item.appendChild(el("span", "#" + entry.rank + " ", "live-podium-rank"));
      item.appendChild(el("span", entry.nickname, "live-podium-name"));
      item.appendChild(el("span", " " + entry.score + " points", "live-podium-score"));
      list.appendChild(item);
    });
  }

  /* How a response reads to people ("Paris", "True", "7", "B, A, C"). */
  function describe(question, response) {
    if (!response) return "";
    const text = function (id, group) {
      const found = ((question && question[group]) || []).find(function (o) { return o.id === id; });
      return found ? found.text : id;
    };
    if ("choice" in response) return text(response.choice, "options");
    if ("choices" in response) return response.choices.map(function (c) { return text(c, "options"); }).join(", ");
    if ("order" in response) return response.order.map(function (c) { return text(c, "items"); }).join(" → ");
    if ("text" in response) return response.text;
    if (question && question.type === "true_false") return response.value ? "True" : "False";
    if ("value" in response) return String(response.value);
    return "";
  }

  return {
    $: $, el: el, clear: clear, show: show, view: view, status: status,
    syncClock: syncClock, serverNow: serverNow, ms: ms, secondsLeft: secondsLeft,
    call: call, board: board, podium: podium, describe: describe,
  };
})();
