"""Lambda adapter for the nine phase functions (each deployed with its own timeout and memory).

The phase to run comes in the state's payload (``{"generation_id", "campaign_id", "phase"}``).
"""

from worldgen.handlers.phase import make_phase_handler

handler = make_phase_handler()
