"""Generated tool schemas (package data): `make schemas` writes them, a test checks they are current."""
