"""Front end: the myriad CLI, back-end description, local and Ray launchers, dashboard."""
