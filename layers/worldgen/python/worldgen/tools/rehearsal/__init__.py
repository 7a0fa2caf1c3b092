"""The deploy rehearsal (``make rehearse``, ``worldgen.tools.rehearse``), by what it does:

- ``template``: the synthesized template, resolved as CloudFormation would for this rehearsal;
- ``worker``: the program of one warm Lambda execution environment (run by path, isolated);
- ``functions``: the rehearsal's side of the workers (start, invoke, stop);
- ``checks``: sizes, settings and least privilege, and the report;
- ``run``: moto, the stack's resources, Lambda dispatch and the worlds.
"""


class RehearsalFailed(Exception):
    """The assembly would not work as deployed; the message says what and where."""
