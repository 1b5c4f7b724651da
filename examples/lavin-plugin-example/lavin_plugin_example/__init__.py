"""An example LaVin plugin: two tasks ("invert", and "silhouette" with options, its colours drawn
per context, written only against ``lavin_plugins.kit``) and one prompt sampler ("stride").

LaVin calls the two hooks below once per session; each calls ``register`` with a factory.
"""

from registry import hookimpl

from lavin_plugin_example.invert import InvertTask
from lavin_plugin_example.silhouette import SilhouetteTask
from lavin_plugin_example.stride import StrideSampler


@hookimpl
def lavin_register_tasks(register):
    register(InvertTask)
    register(SilhouetteTask)


@hookimpl
def lavin_register_prompt_samplers(register):
    register(StrideSampler)
