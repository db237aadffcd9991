# guest/: (nothing yet)
