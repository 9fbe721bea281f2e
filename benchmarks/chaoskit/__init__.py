"""The chaos harness (``make chaos``, docs/chaos.md): a workload with known expected output runs through
real workers on the local broker while faults are injected (SIGKILLs, a broker restart, a SIGSTOP, a
second worker joining and leaving); triggers and customer states are then compared with an undisturbed
in-process replay of the same records."""
