"""Typed IR -> program: lowering, fusion, differentiation (BPTT), adjoint optimisation and
the tape; a verifier checks the program after every pass; explain reports what was done."""
