"""Floor 4: the Temporal runtime: client, worker, plugin, codec, and operations on runs."""
