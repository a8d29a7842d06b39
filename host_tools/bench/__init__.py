"""`make bench`: each module here has run() returning {"row": number}; __main__ runs them all."""
