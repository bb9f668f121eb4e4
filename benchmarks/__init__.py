"""Side-by-side comparisons of the reference factories and engine speed benchmarks."""
