# monitor/: (nothing yet)
