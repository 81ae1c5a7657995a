"""Bounds on work done with untrusted model output, shared by every layer that grades it."""

from __future__ import annotations

# Seconds one answer may take to grade (extraction + math-verify in a worker) before it is
# recorded as a timeout; run, import, grade and the training reward all default to it.
GRADE_TIMEOUT_S: float = 5.0
