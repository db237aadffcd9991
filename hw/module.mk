# hw/: (nothing yet)
