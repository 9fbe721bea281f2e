"""The trigger policy: playbooks, arbitration and suppression, all pure (no I/O, no wall clock)."""
