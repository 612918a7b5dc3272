"""The Functions (primitive ops), one file per category: elementwise, reduce, shape, linalg."""
