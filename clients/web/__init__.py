"""The browser dashboard: static files (index.html, app.js, style.css) served by twin_service
at ``/``. A package only so that the files travel with an installed wheel."""
