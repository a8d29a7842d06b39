# store: crash-safe files on flash (atomic replace, append-only journals). Imports os only.
