# bench/: (nothing yet)
