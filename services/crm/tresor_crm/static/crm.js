// Tresor: small progressive enhancements. Every page works without this file.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target instanceof HTMLSelectElement && target.classList.contains("autosubmit") && target.form) {
    target.form.submit();
  }
});
