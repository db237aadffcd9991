# qapi/: (nothing yet)
