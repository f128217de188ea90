// Progressive enhancement only: every form works without this file.
document.addEventListener("click", (e) => {
  const btn = e.target.closest("[data-copy]");
  if (!btn) return;
  const el = document.getElementById(btn.dataset.copy);
  if (!el) return;
  const text = el.textContent.trim();
  const done = () => { btn.textContent = "Copied"; setTimeout(() => (btn.textContent = "Copy"), 2000); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
});
function fallbackCopy(text, done) {
  const t = document.createElement("textarea");
  t.value = text; document.body.appendChild(t); t.select();
  try { document.execCommand("copy"); done(); } finally { t.remove(); }
}
// "Send test event": show the result in place (the outcome the redirected page shows once).
document.addEventListener("submit", async (e) => {
  const form = e.target;
  if (!form.matches("form[data-inplace]")) return;
  e.preventDefault();
  const target = document.getElementById(form.dataset.inplace);
  const button = form.querySelector("button");
  button.disabled = true; target.textContent = "Sending…";
  try {
    const resp = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin" });
    const html = await resp.text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    const part = doc.getElementById("flash");
    target.innerHTML = part ? part.outerHTML : "The request failed (" + resp.status + ").";
  } catch (err) {
    target.textContent = "The request failed: " + err;
  } finally {
    button.disabled = false;
  }
});
// The add/edit form as a guided wizard: one step at a time, a step list to jump between them,
// Back and Next, a review of every value before saving, and a search over the event types.
// Without this script the steps are one page and the form works the same.
document.querySelectorAll("form[data-wizard]").forEach((form) => {
  const steps = [...form.querySelectorAll("fieldset.step")];
  if (steps.length < 2) return;
  form.classList.add("wizard");
  const nav = document.createElement("ol");
  nav.className = "steps";
  nav.setAttribute("aria-label", "Steps");
  steps.forEach((step, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "step-link";
    b.dataset.step = String(i);
    b.textContent = (i + 1) + ". " + step.querySelector("legend").textContent;
    b.addEventListener("click", () => show(i));
    if (step.querySelector(".error")) b.classList.add("has-problem");
    li.appendChild(b);
    nav.appendChild(li);
    if (i < steps.length - 1) {
      const bar = document.createElement("p");
      bar.className = "step-buttons";
      if (i > 0) bar.appendChild(button("Back", "step-back", () => show(i - 1)));
      bar.appendChild(button("Next", "step-next", () => show(i + 1), true));
      step.appendChild(bar);
    } else {
      const back = button("Back", "step-back", () => show(i - 1));
      const save = step.querySelector("button[type=submit]");
      save.parentNode.insertBefore(back, save);
      save.parentNode.insertBefore(document.createTextNode(" "), save);
    }
  });
  form.insertBefore(nav, form.firstChild);
  form.querySelectorAll(".no-script").forEach((e) => (e.hidden = true));

  function button(text, cls, onClick, primary) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls + (primary ? " primary" : "");
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }
  function show(i) {
    steps.forEach((s, j) => (s.hidden = j !== i));
    nav.querySelectorAll("button").forEach((b, j) => {
      b.classList.toggle("current", j === i);
      if (j === i) b.setAttribute("aria-current", "step"); else b.removeAttribute("aria-current");
    });
    if (i === steps.length - 1) review();
    const first = steps[i].querySelector("input:not([type=hidden]):not([type=checkbox]), select, textarea");
    if (first && document.activeElement !== document.body) first.focus({ preventScroll: true });
  }
  function stepOf(el) {
    return steps.findIndex((s) => s.contains(el));
  }
  // The review: every value as it will be saved (secrets only as set / not set).
  function review() {
    const list = form.querySelector("#review");
    list.textContent = "";
    const add = (k, v) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v || "—";
      list.append(dt, dd);
    };
    const val = (id) => { const e = form.querySelector("#" + id); return e ? e.value.trim() : ""; };
    add("Name", val("name"));
    add("Endpoint URL", val("url"));
    const events = [...form.querySelectorAll("input[name=event_types]:checked")].map((c) => c.value);
    add("Events", events.length ? events.join(", ") : "the default subscription");
    add("Format", val("format"));
    add("Retries", val("retry_count") + (val("retry_delay") ? ", " + val("retry_delay") + " s apart" : ""));
    add("Timeout", val("timeout_ms") + " ms");
    if (val("max_per_second")) add("Rate limit", val("max_per_second") + " / s");
    const unsigned = form.querySelector("#secret").placeholder.includes("unsigned");
    const noSecret = form.dataset.editing !== undefined ? "kept as it is"
      : unsigned ? "none: deliveries are sent unsigned" : "generated, shown once after saving";
    add("Signing secret", val("secret") ? "given (not shown)" : noSecret);
    const headers = val("headers").split("\n").filter((l) => l.trim()).map((l) => l.split(":")[0].trim());
    if (headers.length) add("Custom headers", headers.join(", ") + " (values not shown)");
    if (val("owner_email")) add("Owner", val("owner_email"));
  }
  // A problem's link in the list at the top leads to its step.
  document.querySelectorAll("#problems a[href^='#']").forEach((a) => {
    a.addEventListener("click", (e) => {
      const target = document.getElementById(a.getAttribute("href").slice(1));
      if (!target) return;
      e.preventDefault();
      show(stepOf(target));
      target.scrollIntoView({ block: "center" });
      if (target.focus) target.focus();
    });
  });
  // The event picker's search: type to narrow the types shown (families with no match hide).
  const search = form.querySelector(".event-search");
  if (search) {
    search.hidden = false;
    const input = search.querySelector("input");
    input.addEventListener("input", () => {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      form.querySelectorAll(".family").forEach((fam) => {
        let any = false;
        fam.querySelectorAll("label.check").forEach((l) => {
          const hit = words.every((w) => l.textContent.toLowerCase().includes(w) || fam.querySelector("h3").textContent.toLowerCase().includes(w));
          l.hidden = !hit;
          any = any || hit;
        });
        fam.hidden = !any;
      });
    });
    // Enter in the search does not submit the form.
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
  }
  // "Try it": the filter as it stands, on the latest events (nothing is saved).
  const tryButton = form.querySelector("#try-filter");
  if (tryButton) {
    tryButton.hidden = false;
    tryButton.addEventListener("click", async () => {
      const out = form.querySelector("#filter-try");
      out.textContent = "Trying…";
      const body = new URLSearchParams({
        csrf: form.querySelector("input[name=csrf]").value,
        min_severity: form.querySelector("#min_severity").value,
        filter: form.querySelector("#filter").value,
      });
      try {
        const resp = await fetch(tryButton.dataset.action, { method: "POST", body, credentials: "same-origin" });
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const part = doc.getElementById("filter-try-result");
        out.innerHTML = part ? part.outerHTML : "The request failed (" + resp.status + ").";
      } catch (err) {
        out.textContent = "The request failed: " + err;
      }
    });
  }
  const firstProblem = steps.findIndex((s) => s.querySelector(".error, .field-error"));
  show(firstProblem >= 0 ? firstProblem : 0);
});
