"""What the tests, the demo and the benchmarks share to run servers: free ports (``ports``), a
server's "listening on" line (``listening``) and a redis-server of their own (``redis_server``).

Standard library only, and not part of the wheel. Scripts import it as ``support.ports`` (their
folder is on ``sys.path``), the tests as ``scripts.support.ports``; so its modules import each
other relatively.
"""
