// tokengate portal: the only script. Pages work without it; it adds copy buttons and
// fills the browser's time zone into the sign-up form.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy"));
      var value = target.value !== undefined ? target.value : target.textContent;
      var done = function () { button.textContent = "Copied"; button.setAttribute("aria-live", "polite"); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(done, function () { legacy(target); done(); });
      } else { legacy(target); done(); }
    });
  });
  function legacy(target) {
    if (target.select) { target.select(); } else {
      var range = document.createRange(); range.selectNodeContents(target);
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    }
    try { document.execCommand("copy"); } catch (e) { /* selected: the user can copy by hand */ }
  }
  var tz = document.querySelector("input[name=tz][data-detect]");
  if (tz && !tz.value && window.Intl) {
    try { tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* UTC */ }
  }
  var custom = document.getElementById("custom_usd");
  if (custom) {
    custom.addEventListener("focus", function () { document.getElementById("amount-custom").checked = true; });
  }
});
