"""Compiled models at run time: parameters, the loaded model, worker processes for data
parallelism, and the optional float32 kernels."""
