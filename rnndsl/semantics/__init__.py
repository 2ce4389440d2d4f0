"""What a checked spec means: the time analysis, the unrolled graph and the reference
interpreter over it (the oracle every compiled program is tested against), and input batches."""
