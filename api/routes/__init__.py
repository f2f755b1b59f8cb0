"""Route modules, one per surface."""
