"""Built-in stores, registered through ``register_stores`` like any plugin's (the durable SQLite
store comes with the ``cosmobac-sqlite`` distribution)."""
