"""The ground every stage stands on: errors, limits, safe files, the op table and the
reference array formulas (kernels)."""
