"""Generation over a user's piece: infill, continue, generate, add a track, refine, post-process."""
