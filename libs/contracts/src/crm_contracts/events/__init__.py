"""The `data` payload of every v1 event type, one module per producer."""
