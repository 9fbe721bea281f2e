"""Pieces of benchmarks/closed_loop_eval.py: the Qini computation (``qini``) and the record of each
uplift playbook's decisions with the scores they were made on (``targeting``)."""
