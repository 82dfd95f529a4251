"""Every side effect Baton performs: the model call and its provider adapters."""
