# tests/: (nothing yet)
