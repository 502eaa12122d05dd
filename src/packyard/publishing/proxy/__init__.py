"""The content proxy: HTTP and websockets to app processes, and who may reach which content."""
