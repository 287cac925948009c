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
    let figures = `${option.votes} · ${option.percentage.toFixed(2)} %`;
    let width = option.percentage;
    if ("average" in option) {
      // A score poll: the average score, and the bar as a share of the top score.
      figures =
        option.average === null
          ? "not scored yet"
          : `average ${option.average.toFixed(2)} / ${results.max_score} · ${option.count} scores`;
      width = option.average === null ? 0 : (100 * option.average) / results.max_score;
      item.dataset.average = option.average === null ? "" : option.average;
    }
    if ("first_choices" in option) {
      figures = `${option.first_choices} first choices · ranked by ${option.votes}`;
      item.dataset.firstChoices = option.first_choices;
    }
    item.querySelector(".figures").textContent = figures;
    item.querySelector(".bar").style.width = `${width}%`;
  }
  // Options replaced by an edit go.
  const current = new Set(results.options.map((option) => String(option.id)));
  for (const item of [...list.children]) {
    if (!current.has(item.dataset.option)) item.remove();
  }
  drawRounds(results);
  document.getElementById("total").textContent =
    "rounds" in results || "max_score" in results
      ? `${results.total_voters} voters`
      : `${results.total_votes} votes`;
  root.dataset.total = results.total_votes;
  status.textContent = results.is_active ? "Live" : "Closed";
}

// A ranked poll: each instant-runoff round, and the winner (or the tie).
function drawRounds(results) {
  const rounds = document.getElementById("rounds");
  rounds.replaceChildren();
  if (!("rounds" in results)) return;
  const names = new Map(results.options.map((option) => [option.id, option.text]));
  results.rounds.forEach((round, index) => {
    const item = document.createElement("li");
    const tallies = round.tallies.map((t) => `${names.get(t.id)} ${t.votes}`).join(", ");
    const out = round.eliminated.map((id) => names.get(id)).join(", ");
    item.textContent =
      `Round ${index + 1}: ${tallies}` +
      (round.exhausted ? ` · ${round.exhausted} exhausted` : "") +
      (out ? ` · out: ${out}` : "");
    rounds.appendChild(item);
  });
  const outcome = document.createElement("li");
  outcome.className = "outcome";
  if (results.winner !== null) {
    outcome.textContent = `Winner: ${names.get(results.winner)}`;
  } else if (results.tied.length) {
    outcome.textContent = `Tied: ${results.tied.map((id) => names.get(id)).join(", ")}`;
  } else {
    outcome.textContent = "No ballots yet";
  }
  rounds.appendChild(outcome);
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
