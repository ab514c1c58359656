"""zoo's peer benchmarks: ``python -m benchmarks run [--quick] --json results.json``, then
``python -m benchmarks readme`` writes the README's performance table from that JSON.

``timing`` measures (interleaved repeats, medians and spreads, CPU time, peak memory), ``rows`` defines what is
compared (ours against diffusers on the same weights), ``machine`` describes the hardware, ``report`` renders.
The quality scripts beside them (bench_trilemma.py, bench_digits_quality.py, bench_stylegan_digits.py,
bench_t2i.py) measure sample quality, not speed.
"""
