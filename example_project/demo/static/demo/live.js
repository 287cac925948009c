// The live results page: the poll's title from the API, then its results from the stream
// (server-sent events). EventSource reconnects by itself; every event carries the whole state.
"use strict";

const root = document.getElementById("poll");
const api = root.dataset.api + "polls/" + root.dataset.poll + "/";
const status = document.getElementById("status");

fetch(api, { headers: { Accept: "application/json" } })
  .then((answer) => (answer.ok ? answer.json() : null))
  .then((poll) => {
    if (poll) document.getElementById("title").textContent = poll.title;
  })
  .catch(() => {});

function draw(results) {
  const list = document.getElementById("options");
  for (const option of results.options) {
    let item = list.querySelector(`[data-option="${option.id}"]`);
    if (!item) {
      item = document.createElement("li");
      item.className = "option";
      item.dataset.option = option.id;
      item.innerHTML =
        '<div class="label"><span class="text"></span><span class="figures"></span></div>' +
        '<div class="track"><div class="bar"></div></div>';
      list.appendChild(item);
    }
    item.dataset.votes = option.votes;
    item.dataset.percentage = option.percentage;
    item.querySelector(".text").textContent = option.text;
    item.querySelector(".figures").textContent =
      `${option.votes} · ${option.percentage.toFixed(2)} %`;
    item.querySelector(".bar").style.width = `${option.percentage}%`;
  }
  // Options replaced by an edit go.
  const current = new Set(results.options.map((option) => String(option.id)));
  for (const item of [...list.children]) {
    if (!current.has(item.dataset.option)) item.remove();
  }
  document.getElementById("total").textContent = `${results.total_votes} votes`;
  root.dataset.total = results.total_votes;
  status.textContent = results.is_active ? "Live" : "Closed";
}

const source = new EventSource(api + "results/stream/");
source.addEventListener("results", (event) => draw(JSON.parse(event.data)));
source.addEventListener("deleted", () => {
  source.close();
  status.textContent = "This poll was deleted.";
});
source.onerror = () => {
  status.textContent =
    source.readyState === EventSource.CLOSED ? "No such poll." : "Reconnecting…";
};
