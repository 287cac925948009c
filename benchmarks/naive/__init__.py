"""The baseline of the benchmarks: the poll API as a tutorial would write it.

The same endpoints and bodies as django_polls, built the usual first way: check, then insert
(``exists()`` before ``create()``), and results counted from the vote rows with ``COUNT``. It is
kept here only to be measured against; it is not part of the package.
"""
