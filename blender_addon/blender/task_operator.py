"""Operators whose work runs as a ``core.background_task.BackgroundTask`` (Install Backend, Start).

Run from a script (``execute``) they wait for the task and report how it ended; pressed as a button
(``invoke``) they return at once and the panel draws the task's progress, so Blender never freezes.
"""

from __future__ import annotations

from ..core.background_task import BackgroundTask, TaskFailed


class BackgroundTaskOperator:
    """Mixin for ``bpy.types.Operator`` subclasses: ``_begin`` starts the task and returns it."""

    failure_prefix = ""
    """Put before the task's own message when it fails (e.g. 'could not start the backend: ')."""
    started_message = ""
    """What a button press reports: where the progress shows."""

    def _begin(self, context) -> BackgroundTask:
        raise NotImplementedError

    def _start(self, context) -> BackgroundTask | None:
        try:
            return self._begin(context)
        except TaskFailed as error:
            self.report({"ERROR"}, str(error))
            return None

    def execute(self, context):
        """Scripts: returns when the task has ended, with its outcome."""
        task = self._start(context)
        if task is None:
            return {"CANCELLED"}
        task.wait()
        if task.state != "succeeded":
            self.report({"ERROR"}, self.failure_prefix + task.message)
            return {"CANCELLED"}
        self.report({"INFO"}, task.message)
        return {"FINISHED"}

    def invoke(self, context, event):
        """The button: the task goes on in the background; the panel shows its progress."""
        if self._start(context) is None:
            return {"CANCELLED"}
        self.report({"INFO"}, self.started_message)
        return {"FINISHED"}
