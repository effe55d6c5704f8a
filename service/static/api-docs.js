// /api/docs: Swagger UI over the platform's OpenAPI document (no inline script under the CSP).
(function () {
  "use strict";
  window.addEventListener("load", function () {
    var box = document.getElementById("swagger-ui");
    window.SwaggerUIBundle({ url: box.getAttribute("data-spec"), domNode: box, deepLinking: true });
  });
})();
