"""Resource sampling: per-test figures, the process tree, its cgroup and containers.

Modules, lightest first:

- :mod:`.pertest` - per-test CPU time, peak RSS and I/O of the test process (a few
  microseconds per test; no third-party import);
- :mod:`.settings` - the parsing of what the sampler is asked to sample (containers,
  probes) and whether a Docker engine is configured, all that pytest imports at
  configure time besides :mod:`.pertest`;
- :mod:`.cgroup` - cgroup v1 / v2 discovery and reading (stdlib only);
- :mod:`.procs` - the pytest process tree through psutil;
- :mod:`.containers` - Docker containers through the docker SDK;
- :mod:`.probes` - disk free space, TCP connect latency probes;
- :mod:`.sampler` - the sampling loop, and the separate process it runs in;
- :mod:`.handle` - pytest's side: starting that process (or the loop in a thread when
  it cannot start), asking it to stop, reading its records;
- :mod:`.summary` - pure functions turning samples into peaks, means and per-test peaks.

Nothing here imports pytest or the rest of ``pytest_p3monitor``: the sampler process
loads this package alone, so that it starts quickly and stays small. The modules it
loads (:mod:`.sampler`, :mod:`.settings`, :mod:`.cgroup`, :mod:`.procs`, :mod:`.probes`)
use ``NamedTuple`` s rather than dataclasses and :mod:`os.path` rather than
:mod:`pathlib` for the same reason.
"""

from __future__ import annotations
