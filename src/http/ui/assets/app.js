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
