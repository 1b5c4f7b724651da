"""An example LaVin plugin: one task ("invert") and one prompt sampler ("stride").

LaVin calls the two hooks below once per session; each calls ``register`` with a factory.
"""

from registry import hookimpl

from lavin_plugin_example.invert import InvertTask
from lavin_plugin_example.stride import StrideSampler


@hookimpl
def lavin_register_tasks(register):
    register(InvertTask)


@hookimpl
def lavin_register_prompt_samplers(register):
    register(StrideSampler)
