"""NiceGUI pages and layout."""
