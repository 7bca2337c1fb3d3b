// Reports: a plain GET form (it works without this module); this adds the plates preview in their normal form.
import { $, platesFromText, startPage } from "./fleet-core.js";

startPage();

const plates = $("#id_plates");
const preview = $("#plates-preview");

function showPlates() {
  const { plates: found, bad } = platesFromText(plates.value);
  preview.textContent = bad.length ? `Not a plate: ${bad.join(", ")}` : found.length ? `→ ${found.join(", ")}` : "";
  preview.className = bad.length ? "error" : "";
}

plates?.addEventListener("input", showPlates);
if (plates) showPlates();

// The chosen report's columns only (the page lists them all without this module).
const report = $("#id_report");
const help = [...document.querySelectorAll("#report-help li")];

function showColumns() {
  for (const [i, item] of help.entries()) item.hidden = i !== report.selectedIndex;
}

report?.addEventListener("change", showColumns);
if (report) showColumns();
