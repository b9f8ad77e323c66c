"""Data-quality gates (milestone 06): Great Expectations suites per layer, write-audit-publish.

* :mod:`lab_env.quality.suites`: the expectation suites, one function per layer, each
  expectation tagged ``critical`` (blocks the publish) or ``warning`` (reported only);
* :mod:`lab_env.quality.frames`: the small pandas frames the suites validate, read from the
  raw store and the Iceberg tables (gold from the run's audit branch when it has one);
* :mod:`lab_env.quality.gate`: validate, then fast-forward gold's ``main`` to the audit
  branch, or stop, keep the branch and raise the alert;
* :mod:`lab_env.quality.report`: Data Docs per run and ``lab docs``.

Great Expectations loads only when a validation runs (its import takes seconds).
"""

from lab_env.quality.suites import CRITICAL, LAYERS, WARNING, audit_branch

__all__ = ["CRITICAL", "LAYERS", "WARNING", "audit_branch"]
