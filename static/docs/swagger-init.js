// Initialises Swagger UI for the API docs page.
// Loaded as an external file because the Content-Security-Policy forbids inline scripts.
// Requires /static/vendor/swagger-ui/swagger-ui-bundle.js to be loaded first.
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    tryItOutEnabled: false,
    persistAuthorization: false, // never store auth in localStorage
    queryConfigEnabled: false, // ignore ?url=/?configUrl= overrides from the address bar
    validatorUrl: null, // no call-out to the external validator.swagger.io badge
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  });
});
