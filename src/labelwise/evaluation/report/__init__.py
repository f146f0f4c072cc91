"""Reports: plots and the self-contained HTML page (matplotlib is imported lazily)."""
