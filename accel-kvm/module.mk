# accel-kvm/: (nothing yet)
