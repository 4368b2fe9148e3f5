"""Built-in hard processes (Drell-Yan, tHj) and their shared base class."""
