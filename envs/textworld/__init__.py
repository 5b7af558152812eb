"""TextWorld games made by TextWorld's own generator."""
