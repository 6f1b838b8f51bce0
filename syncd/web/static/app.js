// syncd agenda pages: a little help on top of plain forms (issue 5).
//
// Without this script every form posts and the server answers 303 back to the
// page. With it, the meeting page's edit forms post the same data with fetch,
// follow that redirect, and swap in the updated section from the answer, so
// the scroll position and keyboard focus stay where they were. Anything that
// goes wrong falls back to the plain form submission. No inline code, no eval:
// the page's Content-Security-Policy allows only script-src 'self'.
//
// Editing an existing item: each item has an "Edit" disclosure holding a
// plain edit form and a delete form. Here, opening it puts the caret in the
// text, Enter saves (Shift+Enter is a new line), Escape closes it again; after
// a save, focus returns to that item's "Edit", and after a delete to the item
// that took its place.
"use strict";

(() => {
  // The sections whose forms are handled here; items can move between the
  // two action-item lists, so those two are always replaced together.
  const SECTIONS = ["talking-points", "action-items", "carried", "shared-notes", "private-notes"];
  const TOGETHER = { "action-items": ["action-items", "carried"], carried: ["action-items", "carried"] };

  let live = null;

  function announce(message) {
    if (!live || !message) return;
    // Clear first so that the same message twice in a row is still announced.
    live.textContent = "";
    window.setTimeout(() => {
      live.textContent = message;
    }, 50);
  }

  function message(form) {
    const base = form.dataset.announce || "Saved";
    // An edit announces the new wording; anything else the item as it was.
    const edited = form.classList.contains("edit") ? form.querySelector('[name="text"]')?.value : null;
    const text = (edited ?? form.closest("li")?.querySelector(".text")?.textContent)?.trim();
    if (!text) return base + ".";
    return base + ": " + (text.length > 80 ? text.slice(0, 79) + "…" : text) + ".";
  }

  // Where focus should land in the new section: the same control of the
  // "same" form (same action, and for the move buttons the same direction).
  function focusTarget(section, form, control, place) {
    if (form.classList.contains("edit")) {
      // The editor closes with the fresh page: back to the same item's "Edit".
      const action = form.getAttribute("action");
      const same = Array.from(section.querySelectorAll("form.edit")).find(
        (f) => f.getAttribute("action") === action,
      );
      const summary = same?.closest("details")?.querySelector("summary");
      if (summary) return summary;
    }
    if (form.classList.contains("delete") && place) {
      // The item is gone: the one now in its place (or the new last one).
      const where = document.getElementById(place.section) || section;
      const rows = Array.from(where.querySelectorAll(".list > li:not(.empty)"));
      const row = rows[Math.min(place.index, rows.length - 1)];
      const first = row?.querySelector("button, summary");
      if (first) return first;
    }
    if (form.classList.contains("add")) {
      const field = form.querySelector('input[name="text"]');
      if (field && field.id) return document.getElementById(field.id);
    }
    if (control && control.id) {
      const same = document.getElementById(control.id);
      if (same) return same;
    }
    const action = form.getAttribute("action");
    const offset = form.querySelector('input[name="offset"]')?.value;
    const forms = Array.from(section.querySelectorAll("form")).filter(
      (f) => f.getAttribute("action") === action,
    );
    const match = forms.find((f) => f.querySelector('input[name="offset"]')?.value === offset) || forms[0];
    if (match) {
      const button = match.querySelector("button");
      if (button) return button;
    }
    // The control is gone (e.g. a point moved to the top has no "up" button):
    // the section's heading, so the next Tab stays in this section.
    const heading = section.querySelector("h2");
    if (heading) heading.setAttribute("tabindex", "-1");
    return heading;
  }

  function replaceSections(doc, sectionId) {
    const ids = TOGETHER[sectionId] || [sectionId];
    const pairs = ids.map((id) => [document.getElementById(id), doc.getElementById(id)]);
    if (pairs.some(([old, fresh]) => !old || !fresh)) {
      // The answer is not the page we expected: use its whole main element.
      const main = document.querySelector("main");
      const freshMain = doc.querySelector("main");
      if (!main || !freshMain) return false;
      main.replaceWith(document.adoptNode(freshMain));
      return true;
    }
    for (const [old, fresh] of pairs) old.replaceWith(document.adoptNode(fresh));
    return true;
  }

  // Where a deleted item was: its section and its index in that section's list.
  function placeOf(form) {
    const row = form.closest("li");
    const list = row?.parentElement;
    const section = list?.closest("section");
    if (!row || !section) return null;
    return { section: section.id, index: Array.from(list.children).indexOf(row) };
  }

  async function send(form, submitter) {
    const section = form.closest("section");
    const control = submitter || document.activeElement;
    const place = form.classList.contains("delete") ? placeOf(form) : null;
    const data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    section.setAttribute("aria-busy", "true");
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(data),
        credentials: "same-origin",
        mode: "same-origin",
        redirect: "follow",
        headers: { Accept: "text/html" },
      });
    } catch {
      form.submit(); // the network failed: let the browser try the plain way
      return;
    }
    if (!response.ok || !response.redirected) {
      // Refused (expired form, not allowed, invalid): the plain submission
      // shows the server's explanation page.
      form.submit();
      return;
    }
    // From here on the edit is saved: if anything goes wrong, show the
    // page the server sent us to rather than posting the form a second time.
    try {
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const x = window.scrollX;
      const y = window.scrollY;
      if (!replaceSections(doc, section.id)) throw new Error("no section to replace");
      const fresh = document.getElementById(section.id) || document.querySelector("main");
      const target = fresh && focusTarget(fresh, form, control, place);
      if (target) target.focus({ preventScroll: true });
      window.scrollTo(x, y);
    } catch {
      window.location.assign(response.url);
      return;
    }
    announce(message(form));
  }

  function onSubmit(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    if ((form.getAttribute("method") || "").toLowerCase() !== "post") return;
    const section = form.closest("section");
    if (!section || !SECTIONS.includes(section.id)) return;
    if (section.getAttribute("aria-busy") === "true") {
      event.preventDefault(); // one edit at a time per section
      return;
    }
    if (!window.fetch || !window.DOMParser) return;
    event.preventDefault();
    send(form, event.submitter).catch(() => window.location.reload());
  }

  // The edit disclosure: caret into the text on opening, Enter saves, Escape closes.
  function onToggle(event) {
    const details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.classList.contains("edit")) return;
    if (!details.open) return;
    const field = details.querySelector('textarea[name="text"]');
    if (!field) return;
    field.focus();
    field.setSelectionRange(field.value.length, field.value.length);
  }

  function onKeydown(event) {
    const details = event.target instanceof Element ? event.target.closest("details.edit") : null;
    if (!details) return;
    if (event.key === "Escape") {
      details.open = false;
      details.querySelector("summary")?.focus();
      event.preventDefault();
      return;
    }
    const field = event.target;
    if (
      event.key === "Enter" &&
      !event.shiftKey &&
      !event.isComposing &&
      field instanceof HTMLTextAreaElement &&
      field.form?.classList.contains("edit")
    ) {
      event.preventDefault();
      field.form.requestSubmit();
    }
  }

  function start() {
    if (!document.getElementById("talking-points")) return; // only the meeting page
    live = document.createElement("p");
    live.id = "live";
    live.className = "sr";
    live.setAttribute("role", "status");
    live.setAttribute("aria-live", "polite");
    document.body.appendChild(live);
    document.addEventListener("submit", onSubmit);
    document.addEventListener("toggle", onToggle, true); // toggle does not bubble
    document.addEventListener("keydown", onKeydown);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
