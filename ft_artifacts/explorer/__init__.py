"""The explorer site's static assets (index.html, app.js, style.css, favicon.svg), copied as they are."""
