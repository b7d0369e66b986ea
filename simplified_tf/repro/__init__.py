"""Paper A's figures as declared, resumable run sets with computed verdicts.

`runs` trains one configuration into a shared run store (a finished run is never retrained, a killed
one resumes from its checkpoint); `tuning` picks each arm's learning rate on a log grid that widens
until the best point is interior; `stats` turns per-seed numbers into mean ± std, paired differences
and verdicts; the figure modules declare what to run and what the paper claims. The command is
`scripts/reproduce_simplified_tf.py`.
"""
