"""How files become a project's events: the landing zone and its file formats, quarantine, uploads
and history imports, and the synthetic data of the demo."""
