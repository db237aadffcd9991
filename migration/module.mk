# migration/: (nothing yet)
