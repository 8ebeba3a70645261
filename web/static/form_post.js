// Submits the form_post response at once; without JavaScript the
// Continue button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var f = document.getElementById("form-post");
  if (f) f.submit();
});
