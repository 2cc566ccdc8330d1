"""fastmlp's benchmark suite; run it with ``python -m bench`` (see bench/README.md).

Modules: :mod:`bench.run` (command line and sections), ``_workloads`` (data,
networks, FLOP counts), ``_libs`` (the libraries behind one interface,
timing), ``_torch_mlp`` (the PyTorch loops, plain and modern recipe),
``_machine`` (machine header, GEMM ceiling), ``_child`` (fresh-process memory
and compile measurements), ``_table`` (plain-text and markdown tables).
"""
