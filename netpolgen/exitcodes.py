"""The process exit codes of every subcommand, defined once (README "Exit codes" lists them).

Scripts and CI tell outcomes apart by these numbers, so each outcome has its own and they never
change meaning: an input error is not a failed self-check, and neither is "no traffic".
"""

from __future__ import annotations

OK = 0
# diff/explain: observed traffic the policies would deny (the answer, not an error)
FINDINGS = 1
# bad input or a command line that asks for something impossible
INPUT_ERROR = 2
# generate: the written policies deny observed traffic (the files are still written, to inspect)
SELF_CHECK_FAILED = 3
# the inputs held no usable traffic
NO_TRAFFIC = 4
# output could not be written (the previous output is left as it was)
OUTPUT_ERROR = 5
# a bug in netpolgen (EX_SOFTWARE); the message says so, --debug shows the traceback
INTERNAL_ERROR = 70
# SIGINT/SIGTERM (128 + SIGINT, as shells report it)
INTERRUPTED = 130
