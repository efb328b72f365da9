"""What to run: the spec format, the shipped specs (``*.yaml`` here), spec files, search
spaces and trial names."""
