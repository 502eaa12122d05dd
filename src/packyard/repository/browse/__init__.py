"""What the package pages show: projects, search, versions and files, and rendered descriptions."""
