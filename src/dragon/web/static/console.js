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
    // Marked as background: refreshing by itself does not keep an unattended session alive.
    fetch(panelUrl, {
      credentials: "same-origin",
      headers: { Accept: "text/html", "X-Dragon-Background": "1" },
      signal: controller.signal
    })
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
  // Every event refreshes, the first one too: whatever changed between rendering the page and
  // (re)connecting the stream would otherwise never be shown.
  source.addEventListener("dashboard", refresh);
  source.addEventListener("open", function () { panel.setAttribute("data-live", "connected"); });
  source.addEventListener("error", function () {
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
  var box = document.getElementById(form.getAttribute("data-prefix") + name + "-error");
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
  if (box) { box.textContent = message || ""; box.hidden = !message; }
  return Boolean(box);
}

function countsText(total, one, many, verb, counts) {
  var parts = Object.keys(counts).map(function (k) { return counts[k] + " " + k; });
  return total + " " + (total === 1 ? one : many) + " " + verb + (parts.length ? ": " + parts.join(", ") : "");
}

function renderVerdict(body, response) {
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
  var analysis = body.analysis;
  var box = document.getElementById("result-analysis");
  box.hidden = !analysis;
  if (analysis) {
    document.getElementById("result-classification").textContent =
      analysis.classification.replace(/_/g, " ") + " (confidence " + analysis.confidence.toFixed(2) + ")";
    document.getElementById("result-action").textContent = analysis.proposed_action +
      (analysis.automatic ? "" : " (Dragon only tells people; it changes nothing)");
    document.getElementById("result-analyzer").textContent = analysis.analyzer + " " + analysis.analyzer_version;
    document.getElementById("result-rationale").textContent = "Why: " + analysis.rationale + ". Impact: " + analysis.impact + ".";
    var evidence = document.getElementById("result-evidence");
    evidence.textContent = "";
    if (!analysis.evidence.length) {
      var none = document.createElement("li");
      none.textContent = "No line matched a rule: the failure is unknown to the analyzer.";
      evidence.appendChild(none);
    }
    analysis.evidence.forEach(function (e) {
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = e.text;
      item.appendChild(document.createTextNode("line " + e.line + ": "));
      item.appendChild(code);
      item.appendChild(document.createTextNode(" (rule " + e.rule + ", +" + e.weight + ")"));
      evidence.appendChild(item);
    });
  }
  var remaining = response.headers.get("X-RateLimit-Remaining");
  document.getElementById("result-quota").textContent =
    remaining === null ? "" : remaining + " tries left this hour from your address.";
  document.getElementById("playground-result").hidden = false;
  document.getElementById("result-heading").focus();
}

function refreshPlaygroundStats() {
  fetch("/api/v1/playground/stats", { headers: { Accept: "application/json" } })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (stats) {
      if (!stats) return;
      document.getElementById("playground-stats").textContent =
        countsText(stats.total, "proposal", "proposals", "judged", stats.by_outcome) + "; " +
        stats.analyzed + " from " + (stats.analyzed === 1 ? "a CI log" : "CI logs") +
        (stats.analyzed ? " (" + Object.keys(stats.by_classification).map(function (k) {
          return stats.by_classification[k] + " " + k;
        }).join(", ") + ")" : "") + ".";
    })
    .catch(function () { /* the figures stay as they were; the verdict is what matters */ });
}

function startPlayground(form) {
  var errorBox = document.getElementById("playground-error");
  var button = form.querySelector("button[type=submit]");
  var label = button.textContent;
  var preset = form.querySelector("select.preset");
  var inputs = Array.prototype.slice.call(form.querySelectorAll("[name]"));
  var required = inputs.filter(function (i) { return i.required; }).map(function (i) { return i.name; });
  preset.addEventListener("change", function () {
    var option = preset.options[preset.selectedIndex];
    if (!option.value) return;
    inputs.forEach(function (input) {
      if (input !== preset) input.value = option.getAttribute("data-" + input.name) || "";
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
  function submit() {
    errorBox.hidden = true;
    var data = {};
    inputs.forEach(function (input) {
      fieldError(form, input.name, "");
      var value = input.name === "log" ? input.value : input.value.trim();
      if (value || required.indexOf(input.name) >= 0) data[input.name] = value;
    });
    button.disabled = true;
    button.textContent = form.getAttribute("data-busy");
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, 10000);
    fetch(form.getAttribute("data-api"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(data),
      signal: controller.signal
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.status === 201) { renderVerdict(body, response); refreshPlaygroundStats(); return; }
        if (response.status === 429) {
          var wait = parseInt(response.headers.get("Retry-After") || "60", 10);
          showError("Too many tries from your address. Try again in " +
            (wait >= 120 ? Math.ceil(wait / 60) + " minutes." : wait + " seconds."), false);
          return;
        }
        if (response.status === 422 && body.errors) {
          var elsewhere = body.errors.filter(function (e) { return !fieldError(form, e.field, e.message); });
          showError("Some fields need fixing." + elsewhere.map(function (e) { return " " + e.field + ": " + e.message + "."; }).join(""), false);
          return;
        }
        showError(body.detail || "The playground could not judge this.", true);
      });
    }).catch(function (error) {
      showError(error && error.name === "AbortError" ? "The request timed out." : "The request failed.", true);
    }).finally(function () {
      clearTimeout(timer);
      button.disabled = false;
      button.textContent = label;
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
  document.querySelectorAll("form.playground-form").forEach(startPlayground);
  document.querySelectorAll("form[method=post]").forEach(showProgress);
});
