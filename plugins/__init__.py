"""Built-in plugins, registered through the lcm entry-point group like any other."""
