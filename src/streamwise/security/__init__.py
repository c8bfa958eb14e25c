"""Who may use the server: API keys, auth modes and host names, free of HTTP and storage details."""
