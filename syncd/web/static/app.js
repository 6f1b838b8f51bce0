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
// a save, focus returns to that item's "Edit", and once a delete is done (see
// below) to the item that took its place.
//
// Also here: notes save themselves a moment after typing stops, say so next
// to the button, and the page warns before it is left with text not saved;
// a delete happens after a few seconds in which "Undo" takes it back (the
// form is then posted with confirm=yes; without this script the server asks
// first); talking points can be dragged to a new place, or moved with
// Alt+Up / Alt+Down from anywhere in their line.
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
  function focusables(row) {
    return Array.from(row.querySelectorAll("button, summary, a[href], input, select, textarea")).filter(
      (el) => el.offsetParent !== null,
    );
  }

  function focusTarget(section, form, control) {
    if (form.dataset.focusRow) {
      // Alt+Up/Down: the same control of the same point, wherever it went.
      const row = section.querySelector(`li[data-id="${form.dataset.focusRow}"]`);
      const same = row && focusables(row)[Number(form.dataset.focusIndex) || 0];
      if (same) return same;
    }
    if (form.classList.contains("edit")) {
      // The editor closes with the fresh page: back to the same item's "Edit".
      const action = form.getAttribute("action");
      const same = Array.from(section.querySelectorAll("form.edit")).find(
        (f) => f.getAttribute("action") === action,
      );
      const summary = same?.closest("details")?.querySelector("summary");
      if (summary) return summary;
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

  async function send(form, submitter) {
    const section = form.closest("section");
    const control = submitter || document.activeElement;
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
      const target = fresh && focusTarget(fresh, form, control);
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
    if (form.hasAttribute("data-autosave")) {
      autosave(form, true, true);
      return;
    }
    if (form.classList.contains("delete") && form.closest("li")) {
      deleteWithUndo(form);
      return;
    }
    const submitter = event.submitter;
    // A delete still waiting out its undo goes first: the answer to this edit
    // redraws the section, and must not bring the deleted line back.
    commitDelete(false)
      .then(() => send(form, submitter))
      .catch(() => window.location.reload());
  }

  // ---- notes: autosave, a visible saved state, a warning before leaving ----

  const AUTOSAVE_MS = 1200;
  const notes = new Map(); // form -> { timer, busy, again, dirty }

  function noteState(form) {
    if (!notes.has(form)) notes.set(form, { timer: 0, busy: false, again: false, dirty: false });
    return notes.get(form);
  }

  function showSaved(form, state, text) {
    const label = form.querySelector("[data-saved]");
    if (!label) return;
    label.dataset.state = state;
    label.textContent = text;
  }

  function clock() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // ``explicit``: the Save button, which is announced; saving while typing is only shown.
  async function autosave(form, now, explicit = false) {
    const state = noteState(form);
    window.clearTimeout(state.timer);
    if (!now) {
      state.timer = window.setTimeout(() => autosave(form, true), AUTOSAVE_MS);
      return;
    }
    if (state.busy) {
      state.again = true; // typed while saving: save once more afterwards
      return;
    }
    state.busy = true;
    state.dirty = false;
    showSaved(form, "saving", "Saving…");
    let ok = false;
    let retry = 0;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
        mode: "same-origin",
        redirect: "follow",
        headers: { Accept: "text/html" },
      });
      ok = response.ok && response.redirected;
      if (!ok) retry = Number(response.headers.get("Retry-After")) || 0;
    } catch {
      retry = 5; // the network failed: try again in a moment
    }
    state.busy = false;
    if (ok) {
      showSaved(form, state.again ? "dirty" : "saved", state.again ? "Not saved yet" : "Saved " + clock());
      if (explicit && !state.again) announce(form.dataset.announce + ".");
    } else {
      state.dirty = true;
      showSaved(form, "failed", retry ? "Not saved: trying again…" : "Not saved: press Save to see why");
      if (retry) state.timer = window.setTimeout(() => autosave(form, true), retry * 1000);
      else form.removeAttribute("data-autosave"); // the next Save posts plainly, with the reason
    }
    if (state.again) {
      state.again = false;
      state.dirty = true;
      autosave(form, false);
    }
  }

  function onInput(event) {
    const form = event.target instanceof Element ? event.target.closest("form[data-autosave]") : null;
    if (!form) return;
    noteState(form).dirty = true;
    showSaved(form, "dirty", "Not saved yet");
    autosave(form, false);
  }

  function onBeforeUnload(event) {
    if (pendingDelete) commitDelete(true); // leaving: the delete happens now
    if (!Array.from(notes.values()).some((state) => state.dirty || state.busy)) return;
    event.preventDefault();
    event.returnValue = ""; // the browser shows its own "leave this page?" question
  }

  // ---- delete with undo ----

  const UNDO_MS = 6000;
  let pendingDelete = null; // { form, row, timer, toast }

  function deleteWithUndo(form) {
    commitDelete(false).catch(() => window.location.reload()); // one pending delete at a time
    const row = form.closest("li");
    const what = form.dataset.announce?.replace(/ deleted$/, "") || "Item";
    row.hidden = true;
    const toast = document.createElement("div");
    toast.className = "undo";
    toast.setAttribute("role", "group");
    toast.setAttribute("aria-label", what + " deleted");
    const text = document.createElement("span");
    text.textContent = what + " deleted.";
    const undo = document.createElement("button");
    undo.type = "button";
    undo.textContent = "Undo";
    undo.addEventListener("click", () => undoDelete());
    toast.append(text, undo);
    document.body.appendChild(toast);
    undo.focus({ preventScroll: true });
    announce(what + " deleted. Undo is available for a few seconds.");
    const later = () => commitDelete(false).catch(() => window.location.reload());
    pendingDelete = { form, row, toast, timer: window.setTimeout(later, UNDO_MS) };
  }

  function withConfirm(form) {
    if (!form.querySelector('input[name="confirm"]')) {
      const confirm = document.createElement("input");
      confirm.type = "hidden";
      confirm.name = "confirm";
      confirm.value = "yes";
      form.appendChild(confirm);
    }
    return form;
  }

  function undoDelete() {
    if (!pendingDelete) return;
    const { row, toast, timer } = pendingDelete;
    pendingDelete = null;
    window.clearTimeout(timer);
    toast.remove();
    row.hidden = false;
    row.querySelector("details.menu")?.removeAttribute("open");
    row.querySelector("summary, button")?.focus();
    announce("Delete undone.");
  }

  // Post the pending delete (if any) for real; resolves once the server has it.
  // The hidden line is then removed here, without redrawing the section.
  function commitDelete(leaving) {
    if (!pendingDelete) return Promise.resolve();
    const { form, row, toast, timer } = pendingDelete;
    pendingDelete = null;
    window.clearTimeout(timer);
    toast.remove();
    withConfirm(form);
    const body = new URLSearchParams(new FormData(form));
    if (leaving && navigator.sendBeacon) {
      navigator.sendBeacon(form.action, body);
      return Promise.resolve();
    }
    return fetch(form.action, {
      method: "POST",
      body,
      credentials: "same-origin",
      mode: "same-origin",
      redirect: "manual", // the 303 back to the page: nothing to load
      headers: { Accept: "text/html" },
    }).then((response) => {
      if (response.type !== "opaqueredirect" && !response.ok) throw new Error("not deleted");
      const what = form.dataset.announce || "Deleted";
      const next = row.nextElementSibling || row.previousElementSibling;
      const section = row.closest("section");
      row.remove();
      if (!document.activeElement || document.activeElement === document.body) {
        // the Undo button had focus and is gone: the line now in that place
        const target = next?.querySelector("button, summary") || section?.querySelector("h2");
        if (target && target.tagName === "H2") target.setAttribute("tabindex", "-1");
        target?.focus({ preventScroll: true });
      }
      announce(what + ".");
    });
  }

  // ---- reorder: drag and drop, Alt+Up / Alt+Down ----

  let dragged = null;

  function pointRows(list) {
    return Array.from(list.children).filter((li) => li.dataset.id);
  }

  function moveTo(list, row, position) {
    const section = list.closest("section");
    const csrf = section?.querySelector('input[name="csrf"]')?.value;
    if (!section || !csrf) return;
    const form = document.createElement("form");
    form.method = "post";
    form.action = list.dataset.reorder + "/" + row.dataset.id + "/move";
    form.dataset.announce = "Moved";
    form.hidden = true;
    for (const [name, value] of [["csrf", csrf], ["position", String(position)]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    row.appendChild(form);
    commitDelete(false)
      .then(() => send(form))
      .catch(() => window.location.reload());
  }

  function enableDrag(root) {
    for (const list of root.querySelectorAll("ul[data-reorder]")) {
      for (const row of pointRows(list)) {
        if (row.querySelector("details.menu")) row.draggable = true;
      }
    }
  }

  function onDragStart(event) {
    const row = event.target instanceof Element ? event.target.closest("ul[data-reorder] > li[data-id]") : null;
    if (!row || !row.draggable) return;
    dragged = row;
    row.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", row.querySelector(".text")?.textContent || "");
  }

  function dropTarget(event) {
    const row = event.target instanceof Element ? event.target.closest("ul[data-reorder] > li[data-id]") : null;
    if (!dragged || !row || row.parentElement !== dragged.parentElement) return null;
    return row;
  }

  function clearDropMarks() {
    for (const row of document.querySelectorAll(".drop-before")) row.classList.remove("drop-before");
  }

  function onDragOver(event) {
    const row = dropTarget(event);
    if (!row) return;
    event.preventDefault();
    clearDropMarks();
    row.classList.add("drop-before");
  }

  function onDrop(event) {
    const row = dropTarget(event);
    clearDropMarks();
    if (!row) return;
    event.preventDefault();
    const list = row.parentElement;
    const rows = pointRows(list);
    const from = rows.indexOf(dragged);
    let to = rows.indexOf(row);
    const box = row.getBoundingClientRect();
    if (event.clientY > box.top + box.height / 2) to += 1; // dropped on its lower half
    if (to > from) to -= 1; // the dragged row leaves its old place first
    const moving = dragged;
    dragged.classList.remove("dragging");
    dragged = null;
    if (to !== from) moveTo(list, moving, to);
  }

  function onDragEnd() {
    dragged?.classList.remove("dragging");
    dragged = null;
    clearDropMarks();
  }

  function onMoveKey(event) {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return false;
    const row = event.target instanceof Element ? event.target.closest("ul[data-reorder] > li[data-id]") : null;
    if (!row || event.target instanceof HTMLTextAreaElement) return false;
    const offset = event.key === "ArrowUp" ? "-1" : "1";
    const form = Array.from(row.querySelectorAll("form.move")).find(
      (f) => f.querySelector('input[name="offset"]')?.value === offset,
    );
    event.preventDefault();
    if (!form) return true; // already at that end
    form.dataset.focusRow = row.dataset.id;
    form.dataset.focusIndex = String(Math.max(0, focusables(row).indexOf(event.target)));
    form.requestSubmit();
    return true;
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
    if (onMoveKey(event)) return;
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
    document.addEventListener("input", onInput);
    window.addEventListener("beforeunload", onBeforeUnload);
    document.addEventListener("dragstart", onDragStart);
    document.addEventListener("dragover", onDragOver);
    document.addEventListener("drop", onDrop);
    document.addEventListener("dragend", onDragEnd);
    enableDrag(document);
    new MutationObserver(() => enableDrag(document)).observe(document.body, {
      childList: true,
      subtree: true,
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
