"""The outside faces: inference engines, the HTTP API and the chat demo."""
