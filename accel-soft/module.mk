# accel-soft/: (nothing yet)
