"""Lambda adapter: EventBridge target for executions that FAILED, TIMED_OUT or were ABORTED."""

from worldgen.handlers.generation import record_generation_failure

handler = record_generation_failure
