// Theme: Light, Dark, or System (follows prefers-color-scheme), chosen in the sidebar's
// "Theme" control and kept in localStorage ("localchat-theme").
//
// A classic script loaded by index.html before the body is parsed, so the stored choice
// is applied on first paint, before Python loads (no flash of the wrong theme); the
// policy forbids inline scripts, hence this file. localStorage rather than IndexedDB:
// it is a display preference that must be readable synchronously at that moment.
// Side effects: sets <html data-theme="light|dark"> for an explicit choice (none for
// System: css/app.css then follows the system), keeps <meta name="theme-color"> in step,
// wires <select id="theme-choice"> once the document is parsed, and follows the choice
// made in another tab (storage event).
"use strict";
(() => {
  const KEY = "localchat-theme";
  const CHOICES = ["system", "light", "dark"];

  function stored() {
    try {
      const value = localStorage.getItem(KEY);
      return CHOICES.includes(value) ? value : "system";
    } catch {
      return "system";  // storage blocked: follow the system
    }
  }

  function apply(choice) {
    const root = document.documentElement;
    if (choice === "system") delete root.dataset.theme;
    else root.dataset.theme = choice;
    const dark = choice === "dark" || (choice === "system" &&
      matchMedia("(prefers-color-scheme: dark)").matches);
    const meta = document.querySelector('meta[name="theme-color"]');
    if (meta) meta.content = dark ? "#1d1e28" : "#3b3fb8";
    const select = document.getElementById("theme-choice");
    if (select && select.value !== choice) select.value = choice;
  }

  function choose(choice) {
    try {
      if (choice === "system") localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, choice);
    } catch {
      // Not kept (storage blocked): still applied to this page.
    }
    apply(choice);
  }

  apply(stored());
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => apply(stored()));
  addEventListener("storage", (event) => { if (event.key === KEY || event.key === null) apply(stored()); });
  document.addEventListener("DOMContentLoaded", () => {
    const select = document.getElementById("theme-choice");
    if (!select) return;
    select.value = stored();
    select.addEventListener("change", () => choose(select.value));
  });
})();
