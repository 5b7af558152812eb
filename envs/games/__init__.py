"""Small text games: Maze, Wordle, TextCraft."""
