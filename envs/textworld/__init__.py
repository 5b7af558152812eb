"""TextWorld games: made by TextWorld's own generator, or the user's own made by `tw-make`."""
