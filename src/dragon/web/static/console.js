// Dragon console: live updates of the dashboard and runs, the playground form, and progress on form submits.
// Loaded as a file (the Content-Security-Policy allows no inline script).
"use strict";

function setStatus(text, retry) {
  var box = document.getElementById("live-status");
  if (!box) return;
  box.textContent = text;
  if (retry) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Retry";
    button.addEventListener("click", function () { box.textContent = ""; retry(); });
    box.appendChild(document.createTextNode(" "));
    box.appendChild(button);
  }
}

function startLivePanel(panel) {
  // A fragment of the page that the server re-renders: fetched again on every change the live
  // feed reports, and, with data-poll-seconds, every few seconds while it says it is active.
  var streamUrl = panel.getAttribute("data-live-src");
  var panelUrl = panel.getAttribute("data-panel-src");
  var label = panel.getAttribute("data-live-label") || "Page";
  var pollMs = parseFloat(panel.getAttribute("data-poll-seconds") || "0") * 1000;
  var pollTimer = null;
  function active() { return panel.querySelector("[data-active=true]") !== null; }
  function schedulePoll() {
    clearTimeout(pollTimer);
    if (pollMs > 0 && active()) pollTimer = setTimeout(refresh, pollMs);
  }
  function refresh() {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, 10000);
    fetch(panelUrl, { credentials: "same-origin", headers: { Accept: "text/html" }, signal: controller.signal })
      .then(function (r) {
        if (r.redirected || r.status === 401) {
          ended();
          return null;
        }
        if (!r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        panel.innerHTML = html;
        panel.setAttribute("data-updated", new Date().toISOString());
        setStatus(label + " updated at " + new Date().toLocaleTimeString() + ".");
        schedulePoll();
      })
      .catch(function (error) {
        var why = error && error.name === "AbortError" ? "timed out" : "failed";
        setStatus("Updating the " + label.toLowerCase() + " " + why + ".", refresh);
      })
      .finally(function () { clearTimeout(timer); });
  }
  function ended() {
    if (source) source.close();
    clearTimeout(pollTimer);
    panel.setAttribute("data-live", "stopped");
    setStatus("Live updates stopped: your session may have ended.", function () {
      window.location.reload();
    });
  }
  schedulePoll();
  if (!streamUrl || !window.EventSource) return;
  var source = new EventSource(streamUrl);
  var first = true;
  source.addEventListener("dashboard", function () {
    if (first) { first = false; return; } // the page was rendered with these figures
    refresh();
  });
  source.addEventListener("open", function () { panel.setAttribute("data-live", "connected"); });
  source.addEventListener("error", function () {
    first = true;
    if (source.readyState === EventSource.CLOSED) {
      ended(); // refused (a 401, say): the browser will not try again by itself
      return;
    }
    panel.setAttribute("data-live", "reconnecting");
    setStatus("Live updates interrupted; reconnecting…");
  });
}

function fieldError(form, name, message) {
  var input = form.querySelector("[name='" + name + "']");
  var box = document.getElementById("pg-" + name + "-error");
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
  if (box) { box.textContent = message || ""; box.hidden = !message; }
}

function startPlayground(form) {
  var errorBox = document.getElementById("playground-error");
  var result = document.getElementById("playground-result");
  var button = form.querySelector("button[type=submit]");
  var scenario = document.getElementById("scenario");
  scenario.addEventListener("change", function () {
    var option = scenario.options[scenario.selectedIndex];
    ["title", "action", "rationale", "impact", "repo", "branch", "environment"].forEach(function (name) {
      var input = form.querySelector("[name='" + name + "']");
      if (input && option.value) input.value = option.getAttribute("data-" + name) || "";
    });
  });
  function showError(message, retry) {
    errorBox.textContent = message;
    if (retry) {
      var again = document.createElement("button");
      again.type = "button";
      again.textContent = "Retry";
      again.addEventListener("click", submit);
      errorBox.appendChild(document.createTextNode(" "));
      errorBox.appendChild(again);
    }
    errorBox.hidden = false;
  }
  function render(body, response) {
    var outcome = {
      auto_approve: "Would run on its own: the policy auto-approves it.",
      require_approval: "Would wait for approval.",
      deny: "Would be refused by the policy."
    }[body.outcome] || body.outcome;
    document.getElementById("result-outcome").textContent = outcome;
    document.getElementById("result-risk").textContent = body.risk_level + " (" + body.risk_score + "/100)";
    document.getElementById("result-rule").textContent = body.policy_rule + ": " + body.policy_reason;
    document.getElementById("result-approval").textContent = body.approval_needed
      ? body.approvals_required + " approval(s) from " + body.approver_roles.join(" or ")
      : "None needed";
    var list = document.getElementById("result-factors");
    list.textContent = "";
    body.risk_factors.forEach(function (f) {
      var item = document.createElement("li");
      item.textContent = f.name + " (+" + f.weight + ")" + (f.detail ? ": " + f.detail : "");
      list.appendChild(item);
    });
    var remaining = response.headers.get("X-RateLimit-Remaining");
    document.getElementById("result-quota").textContent =
      remaining === null ? "" : remaining + " tries left this hour from your address.";
    result.hidden = false;
    document.getElementById("result-heading").focus();
  }
  function refreshStats() {
    fetch("/api/v1/playground/stats", { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (stats) {
        if (!stats) return;
        var parts = Object.keys(stats.by_outcome).map(function (k) { return stats.by_outcome[k] + " " + k; });
        document.getElementById("playground-stats").textContent =
          stats.total + (stats.total === 1 ? " proposal" : " proposals") + " judged" + (parts.length ? ": " + parts.join(", ") : "") + ".";
      })
      .catch(function () { /* the figures stay as they were; the verdict is what matters */ });
  }
  function submit() {
    errorBox.hidden = true;
    ["title", "action", "repo", "branch", "environment"].forEach(function (n) { fieldError(form, n, ""); });
    var data = {};
    ["title", "action", "rationale", "impact", "repo", "branch", "environment", "scenario"].forEach(function (name) {
      var value = form.querySelector("[name='" + name + "']").value.trim();
      if (value || name === "title" || name === "action") data[name] = value;
    });
    button.disabled = true;
    button.textContent = "Judging…";
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, 10000);
    fetch(form.getAttribute("data-api"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(data),
      signal: controller.signal
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.status === 201) { render(body, response); refreshStats(); return; }
        if (response.status === 429) {
          var wait = parseInt(response.headers.get("Retry-After") || "60", 10);
          showError("Too many tries from your address. Try again in " +
            (wait >= 120 ? Math.ceil(wait / 60) + " minutes." : wait + " seconds."), false);
          return;
        }
        if (response.status === 422 && body.errors) {
          body.errors.forEach(function (e) { fieldError(form, e.field, e.message); });
          showError("Some fields need fixing.", false);
          return;
        }
        showError(body.detail || "The playground could not judge this proposal.", true);
      });
    }).catch(function () {
      showError("The request failed or timed out.", true);
    }).finally(function () {
      clearTimeout(timer);
      button.disabled = false;
      button.textContent = "Judge it";
    });
  }
  form.addEventListener("submit", function (event) { event.preventDefault(); submit(); });
}

function showProgress(form) {
  form.addEventListener("submit", function (event) {
    var button = event.submitter || form.querySelector("button[type=submit]");
    if (button) {
      button.setAttribute("aria-busy", "true");
      setStatus("Working…");
    }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-panel-src]").forEach(startLivePanel);
  var playground = document.getElementById("playground-form");
  if (playground) startPlayground(playground);
  document.querySelectorAll("form[method=post]").forEach(showProgress);
});
