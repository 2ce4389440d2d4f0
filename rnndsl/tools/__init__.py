"""What users run: the command line, graphs as DOT, benchmarks and gradient checks."""
