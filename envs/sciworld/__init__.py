"""ScienceWorld on the scienceworld package (a Java process)."""
