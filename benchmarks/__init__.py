"""The benchmarks of ameli_otp: ``python -m benchmarks [--quick | --smoke] [--out DIR]``.

One run measures ops/s and latency percentiles of the limiter and of every
``SecurityCodes`` call on the memory store, Redis and Redis Cluster (sync and async
faces), next to ``limits`` on the same stores and to the floors (a bare locked
dict-of-deques; a raw ``EVALSHA`` of ``return 1`` and ``PING`` on the same
connection), and writes ``latest.json``, ``latest.md`` (with the targets met or
missed) and ``latest.png`` into ``benchmarks/results``. See ``runner.py``.
"""
