# system/: (nothing yet)
