"""Example user model types, written the way a physicist's own package would write them."""
