"""LaVin's built-in plugin: tasks and prompt samplers, registered through the ``lavin`` entry
point exactly as a third-party plugin is (see ``pyproject.toml``).

Tasks: depth, normals, semantic and foreground segmentation, edges, detection, pose (from the
procedural scenes of ``lavin_plugins.scenes``); colorization, denoising, deblurring, inpainting,
low-light enhancement, deraining (any RGB source, ``lavin_plugins.photos``); frame prediction
(moving scenes); video depth, normals, segmentation and depth-to-video (``lavin_plugins.tasks.video_scenes``);
image maps drawn per context (``map_*``) and held-out re-renderings (``unseen_*``, see
``lavin_plugins.tasks.universe``); and ``folder``, a task backed by a template folder on disk or at any fsspec URL.
Prompt samplers: random, fixed, nearest (``lavin_plugins.samplers``).
"""

from __future__ import annotations

from registry import hookimpl


@hookimpl
def lavin_register_tasks(register):
    from lavin_plugins.tasks import BUILTIN_TASKS, MAP_TASKS, UNSEEN_TASKS
    from lavin_plugins.tasks.folder import FolderTask

    for task in (*BUILTIN_TASKS, *MAP_TASKS, *UNSEEN_TASKS):
        register(task)
    register(FolderTask)


@hookimpl
def lavin_register_prompt_samplers(register):
    from lavin_plugins.samplers import BUILTIN_PROMPT_SAMPLERS

    for sampler in BUILTIN_PROMPT_SAMPLERS:
        register(sampler)
