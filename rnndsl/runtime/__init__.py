"""Compiled models at run time: parameters, the loaded model, devices, and data parallelism over
the ranks of an MPI job (mpi.py)."""
